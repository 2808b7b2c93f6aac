//! A DashScope client's `parameters` → the canonical request's settings, and the client's own
//! output choices (result format, incremental output). Refuses what cannot be translated:
//! token-id stop sequences, more than four choices, unknown formats.

use serde_json::Value;

use super::wire::{WireParameters, WireTool};
use super::{DashScopeOptions, ResultFormat};
use crate::protocol::canonical::{
    ChatRequest, InvalidRequest, ReasoningConfig, ResponseFormat, Tool, ToolChoice,
};

fn invalid(message: impl Into<String>, param: &str) -> InvalidRequest {
    InvalidRequest::new(message, Some(param))
}

pub(super) fn decode_parameters(
    params: WireParameters,
    request: &mut ChatRequest,
) -> Result<DashScopeOptions, InvalidRequest> {
    let result_format = match params.result_format.as_deref() {
        None | Some("text") => ResultFormat::Text,
        Some("message") => ResultFormat::Message,
        Some(other) => {
            return Err(invalid(
                format!("'result_format' must be \"text\" or \"message\", not \"{other}\"."),
                "parameters.result_format",
            ))
        }
    };
    let options = DashScopeOptions {
        result_format,
        incremental_output: params.incremental_output.unwrap_or(false),
    };
    request.max_output_tokens = match params.max_tokens.or(params.max_completion_tokens) {
        Some(0) => {
            return Err(invalid(
                "'max_tokens' must be at least 1.",
                "parameters.max_tokens",
            ))
        }
        limit => limit,
    };
    request.temperature = params.temperature;
    request.top_p = params.top_p;
    request.top_k = params.top_k;
    request.seed = params.seed;
    request.presence_penalty = params.presence_penalty;
    request.frequency_penalty = params.frequency_penalty;
    request.stop = decode_stop(params.stop)?;
    request.n = match params.n {
        None => None,
        Some(n @ 1..=4) => Some(n),
        Some(_) => return Err(invalid("'n' must be from 1 to 4.", "parameters.n")),
    };
    request.tools = decode_tools(params.tools.unwrap_or_default())?;
    request.tool_choice = params.tool_choice.map(decode_tool_choice).transpose()?;
    request.parallel_tool_calls = params.parallel_tool_calls;
    request.response_format = params
        .response_format
        .map(decode_response_format)
        .transpose()?;
    // `thinking_budget` alone does not turn thinking on: the model's default decides then.
    request.reasoning = match (params.enable_thinking, params.reasoning_effort) {
        (None, None) => None,
        (enabled, effort) => {
            let enabled = enabled.unwrap_or(true);
            Some(ReasoningConfig {
                enabled,
                effort,
                budget_tokens: params.thinking_budget.filter(|_| enabled),
            })
        }
    };
    Ok(options)
}

/// One stop string stays a list (§7 stop shape); token-id lists cannot be translated.
fn decode_stop(stop: Option<Value>) -> Result<Vec<String>, InvalidRequest> {
    let unsupported = || {
        InvalidRequest::untranslatable(
            "'stop' must be a string or a list of strings; token-id stop sequences are not supported.",
            Some("parameters.stop"),
        )
    };
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(stop)) => Ok(vec![stop]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(stop) => Ok(stop),
                _ => Err(unsupported()),
            })
            .collect(),
        Some(_) => Err(unsupported()),
    }
}

/// Tools in the OpenAI shape; a tool without `parameters` is kept (it takes no arguments).
fn decode_tools(tools: Vec<WireTool>) -> Result<Vec<Tool>, InvalidRequest> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let param = format!("parameters.tools[{i}]");
            if tool.kind.as_deref().is_some_and(|kind| kind != "function") {
                return Err(invalid(
                    format!("'{param}.type' must be \"function\"."),
                    &param,
                ));
            }
            match tool.function {
                Some(function) if !function.name.is_empty() => Ok(Tool {
                    name: function.name,
                    description: function.description,
                    parameters: function.parameters,
                    strict: function.strict,
                }),
                _ => Err(invalid(
                    format!("'{param}.function.name' is required."),
                    &param,
                )),
            }
        })
        .collect()
}

fn decode_tool_choice(choice: Value) -> Result<ToolChoice, InvalidRequest> {
    match &choice {
        Value::String(word) => match word.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad_tool_choice()),
        },
        Value::Object(_) => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(|name| ToolChoice::Named(name.to_string()))
            .ok_or_else(bad_tool_choice),
        _ => Err(bad_tool_choice()),
    }
}

fn bad_tool_choice() -> InvalidRequest {
    invalid(
        "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}.",
        "parameters.tool_choice",
    )
}

fn decode_response_format(format: Value) -> Result<ResponseFormat, InvalidRequest> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        // Unverified on DashScope itself, but representable: kept for other upstreams.
        Some("json_schema") => {
            let spec = format.get("json_schema").cloned().unwrap_or(Value::Null);
            Ok(ResponseFormat::JsonSchema {
                name: spec.get("name").and_then(Value::as_str).map(str::to_string),
                schema: spec.get("schema").cloned().unwrap_or(Value::Null),
                strict: spec.get("strict").and_then(Value::as_bool),
            })
        }
        _ => Err(invalid(
            "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\".",
            "parameters.response_format",
        )),
    }
}
