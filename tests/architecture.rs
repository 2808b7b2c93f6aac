//! The dependency rules of docs/architecture.md, checked.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dependencies(manifest: &str) -> String {
    let text = read(manifest);
    let start = text.find("[dependencies]").expect("has dependencies");
    let rest = &text[start + 1..];
    let end = rest.find("\n[").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn the_domain_crate_depends_on_no_io() {
    let deps = dependencies("domain/Cargo.toml");
    for forbidden in [
        "sqlx",
        "axum",
        "reqwest",
        "tokio",
        "modelrouter-projections",
        "hyper",
    ] {
        assert!(!deps.contains(forbidden), "domain depends on {forbidden}");
    }
}

#[test]
fn the_projections_crate_knows_no_http() {
    let deps = dependencies("projections/Cargo.toml");
    for forbidden in ["axum", "reqwest", "hyper", "tower"] {
        assert!(
            !deps.contains(forbidden),
            "projections depends on {forbidden}"
        );
    }
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_code_makes_no_http_calls_and_touches_no_database() {
    let dir = std::path::PathBuf::from(format!("{}/src/protocol", env!("CARGO_MANIFEST_DIR")));
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        for forbidden in [
            "reqwest",
            "sqlx",
            "axum",
            "crate::store",
            "crate::gateway",
            "tokio::net",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                path.display()
            );
        }
    }
    assert!(
        files.len() > 20,
        "every dialect's files are checked: {}",
        files.len()
    );
}
