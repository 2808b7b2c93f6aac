//! Tool definitions and `tool_choice`, both ways (protocols.md §1, §5.1). Tools without a
//! `parameters` schema are kept as they are (one-api skips them: §7 "tools without schema"), and
//! `allowed_tools` is read as `auto` since the canonical model keeps every tool.

use serde_json::Value;

use super::wire::{FunctionDef, FunctionName, NamedToolChoice, ToolChoice, ToolDef};
use crate::protocol::canonical::{self, InvalidRequest, Tool};

fn invalid(message: String, param: &str) -> InvalidRequest {
    InvalidRequest::new(message, Some(param))
}

pub(super) fn decode_tools(tools: Vec<ToolDef>) -> Result<Vec<Tool>, InvalidRequest> {
    let mut out = Vec::new();
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        if tool.kind != "function" {
            return Err(invalid(
                format!(
                    "'{at}.type' '{}' is not supported; only 'function' tools are.",
                    tool.kind
                ),
                &at,
            ));
        }
        let function = tool
            .function
            .ok_or_else(|| invalid(format!("'{at}.function' is required."), &at))?;
        out.push(Tool {
            name: function.name,
            description: function.description,
            parameters: function.parameters,
            strict: function.strict,
        });
    }
    Ok(out)
}

pub(super) fn decode_tool_choice(
    choice: ToolChoice,
) -> Result<canonical::ToolChoice, InvalidRequest> {
    let bad = || {
        invalid(
            "'tool_choice' must be 'none', 'auto', 'required' or a named function.".into(),
            "tool_choice",
        )
    };
    match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "none" => Ok(canonical::ToolChoice::None),
            "auto" => Ok(canonical::ToolChoice::Auto),
            "required" => Ok(canonical::ToolChoice::Required),
            _ => Err(bad()),
        },
        ToolChoice::Named(named) if named.kind == "function" => {
            Ok(canonical::ToolChoice::Named(named.function.name))
        }
        // `allowed_tools` narrows the set; the canonical model keeps every tool, so it is Auto.
        ToolChoice::Other(object)
            if object.get("type").and_then(Value::as_str) == Some("allowed_tools") =>
        {
            Ok(canonical::ToolChoice::Auto)
        }
        _ => Err(bad()),
    }
}
pub(super) fn encode_tool(tool: &canonical::Tool) -> ToolDef {
    ToolDef {
        kind: "function".into(),
        function: Some(FunctionDef {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
            strict: tool.strict,
        }),
    }
}

pub(super) fn encode_tool_choice(choice: &canonical::ToolChoice) -> ToolChoice {
    match choice {
        canonical::ToolChoice::Auto => ToolChoice::Mode("auto".into()),
        canonical::ToolChoice::None => ToolChoice::Mode("none".into()),
        canonical::ToolChoice::Required => ToolChoice::Mode("required".into()),
        canonical::ToolChoice::Named(name) => ToolChoice::Named(NamedToolChoice {
            kind: "function".into(),
            function: FunctionName { name: name.clone() },
        }),
    }
}
