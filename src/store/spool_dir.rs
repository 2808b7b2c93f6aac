//! The spool's files: taking a slot, finding what a predecessor left, segment names.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::{Position, MAX_SLOTS};

/// What opening the directory found.
pub(super) struct Opened {
    pub(super) lock: File,
    pub(super) file: File,
    /// The new segment this process writes.
    pub(super) segment: u64,
    /// Where draining starts.
    pub(super) cursor: Position,
    /// The end of what the predecessor left.
    pub(super) recovery_end: Position,
    pub(super) backlog: u64,
    pub(super) previous_node: Option<String>,
}

pub(super) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016}.spool"))
}

/// The segment numbers in the directory, in order.
pub(super) fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".spool").and_then(|n| n.parse().ok()) {
            found.push(number);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Replaces `path` with `text` (write beside, then rename: never a half-written file).
pub(super) fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let beside = path.with_extension("new");
    fs::write(&beside, text)?;
    fs::rename(beside, path)
}

/// Takes the first spool slot (`<root>/0`, `<root>/1`, …) no running process holds. Several
/// replicas may share a data directory; each writes its own slot, and a replica that starts
/// where one died takes its slot over — with the records it left.
pub(super) fn take_slot(root: &Path) -> std::io::Result<(PathBuf, File)> {
    crate::crypto::create_private_dir(root)?;
    for slot in 0..MAX_SLOTS {
        let dir = root.join(slot.to_string());
        crate::crypto::create_private_dir(&dir)?;
        // Held while the spool runs (kept in `Shared`): two processes on one slot would
        // interleave segments and count the backlog twice.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if lock.try_lock().is_ok() {
            return Ok((dir, lock));
        }
    }
    Err(std::io::Error::other(format!(
        "all {MAX_SLOTS} metering spool slots are in use by running processes"
    )))
}

pub(super) fn open_dir(root: &Path, node: &str) -> std::io::Result<(PathBuf, Opened)> {
    let (dir, lock) = take_slot(root)?;
    let dir = dir.as_path();
    let previous_node = fs::read_to_string(dir.join("node"))
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    replace_file(&dir.join("node"), node)?;

    let saved: Option<Position> = fs::read_to_string(dir.join("cursor"))
        .ok()
        .and_then(|text| {
            let (segment, offset) = text.trim().split_once(' ')?;
            Some(Position {
                segment: segment.parse().ok()?,
                offset: offset.parse().ok()?,
            })
        });
    let existing = segments(dir)?;
    // Segments before the cursor were drained: a crash came between draining and deleting.
    let mut cursor = Position::default();
    let mut left = Vec::new();
    for &segment in &existing {
        match saved {
            Some(saved) if segment < saved.segment => fs::remove_file(segment_path(dir, segment))?,
            _ => left.push(segment),
        }
    }
    if let Some(&first) = left.first() {
        cursor = match saved {
            Some(saved) if saved.segment == first => saved,
            _ => Position {
                segment: first,
                offset: 0,
            },
        };
    }
    let mut backlog = 0;
    let mut recovery_end = cursor;
    for &segment in &left {
        let size = fs::metadata(segment_path(dir, segment))?.len();
        backlog += if segment == cursor.segment {
            size.saturating_sub(cursor.offset)
        } else {
            size
        };
        recovery_end = Position {
            segment,
            offset: size,
        };
    }
    // Always a fresh segment: the last one left may end in a torn record. Numbers only grow
    // (past the cursor's too), so "before the cursor" always means "drained".
    let segment = existing
        .last()
        .copied()
        .max(saved.map(|s| s.segment))
        .map_or(1, |last| last + 1);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, segment))?;
    sync_dir(dir);
    if left.is_empty() {
        cursor = Position { segment, offset: 0 };
        recovery_end = cursor;
    }
    if backlog > 0 {
        tracing::info!(
            bytes = backlog,
            segments = left.len(),
            "metering records left by the previous run; draining them into the store first"
        );
    }
    Ok((
        dir.to_path_buf(),
        Opened {
            lock,
            file,
            segment,
            cursor,
            recovery_end,
            backlog,
            previous_node,
        },
    ))
}

/// Makes a new or removed file's name durable (best effort: not every filesystem can).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}
