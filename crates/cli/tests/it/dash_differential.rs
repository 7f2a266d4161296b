//! Differential test of the Dash callback rules against the real Dash: a
//! corpus of raw callback requests (method spellings, `outputs` shapes,
//! duplicate keys, `output`/`outputs` disagreements, numeric and escaped id
//! forms, encodings) goes both through aadgate, as users without the role,
//! and straight at Dash. Dash's callbacks count their runs (`targets.py`),
//! so "Dash executed a protected callback" is observed, not assumed.

use std::collections::HashMap;

use aadgate_dev_idp::DevIdpConfig;
use serde_json::{Value, json};

use crate::harness::{Browser, Setup, Targets};

const RULES: &str = r#"
[dash]
max_body_bytes = 65536

[[dash.callback]]
output = "write-result"
role = "App.Write"

[[dash.callback]]
output = '{"type": "row", "index": 1}'
role = "App.Write"

[[dash.callback]]
output = '{"type": "admin-row"}'
role = "App.Admin"

[[dash.callback]]
output = '{"kind": "secret"}'
role = "App.Admin"
"#;

const CALLBACK: &str = "/dash/_dash-update-component";

/// One callback of `targets.py` as its renderer would call it.
struct Callback {
    /// Counter name in `targets.py`.
    name: &'static str,
    output: String,
    outputs: Value,
    inputs: Value,
    /// The lowest role index that may run it (0: App.Read).
    role: usize,
}

/// Fills in `output` strings from Dash's own `_dash-dependencies` (the
/// `allow_duplicate` one carries a hash of the inputs).
async fn callbacks(targets: &Targets) -> Vec<Callback> {
    let deps: Vec<Value> = reqwest::get(format!("http://{}/dash/_dash-dependencies", targets.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let output_of = |input: &str| -> String {
        deps.iter()
            .find(|d| {
                d["inputs"][0]["id"].as_str() == Some(input)
                    || d["inputs"][0]["id"]
                        .as_str()
                        .is_some_and(|i| i.contains(input))
            })
            .and_then(|d| d["output"].as_str())
            .unwrap_or_else(|| panic!("no callback with input {input}"))
            .to_owned()
    };
    let click = |id: Value| json!([{"id": id, "property": "n_clicks", "value": 1}]);
    vec![
        Callback {
            name: "write",
            output: output_of("write-button"),
            outputs: json!([{"id": "write-result", "property": "children"}, {"id": "data-version", "property": "data"}]),
            inputs: click(json!("write-button")),
            role: 1,
        },
        Callback {
            name: "dup_write",
            output: output_of("dup-button"),
            outputs: json!({"id": "write-result", "property": "children"}),
            inputs: click(json!("dup-button")),
            role: 1,
        },
        Callback {
            name: "row",
            output: output_of("row-button"),
            outputs: json!({"id": {"type": "row", "index": 1}, "property": "children"}),
            inputs: click(json!({"type": "row-button", "index": 1})),
            role: 1,
        },
        Callback {
            name: "admin_rows",
            output: output_of("admin-button"),
            outputs: json!([{"id": {"type": "admin-row", "index": 0}, "property": "children"}]),
            inputs: click(json!("admin-button")),
            role: 2,
        },
        Callback {
            name: "secret",
            output: output_of("secret-button"),
            outputs: json!({"id": {"kind": "secret", "n": 2}, "property": "children"}),
            inputs: click(json!("secret-button")),
            role: 2,
        },
        Callback {
            name: "open",
            output: output_of("open-button"),
            outputs: json!({"id": "open-result", "property": "children"}),
            inputs: click(json!("open-button")),
            role: 0,
        },
    ]
}

/// The defect class a corpus entry probes (issue 10, class 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Class {
    Canonical,
    Method,
    EmptyOutputs,
    Disagreement,
    DuplicateKey,
    Number,
    Encoding,
}

struct Entry {
    class: Class,
    label: String,
    method: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

/// A body as text, fields in the order given (duplicates allowed).
fn body(fields: &[(&str, String)]) -> Vec<u8> {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json!(k)))
        .collect();
    format!("{{{}}}", inner.join(",")).into_bytes()
}

fn corpus(cbs: &[Callback]) -> Vec<(usize, Entry)> {
    let open = cbs.iter().find(|c| c.name == "open").unwrap();
    let mut out = Vec::new();
    for (i, cb) in cbs.iter().enumerate() {
        let output = json!(cb.output).to_string();
        let outputs = cb.outputs.to_string();
        let inputs = cb.inputs.to_string();
        let std = |outputs: &str| {
            body(&[
                ("output", output.clone()),
                ("outputs", outputs.to_owned()),
                ("inputs", inputs.clone()),
                ("changedPropIds", "[]".into()),
            ])
        };
        let mut push = |class, label: String, method, content_type, body| {
            out.push((
                i,
                Entry {
                    class,
                    label: format!("{}: {label}", cb.name),
                    method,
                    content_type,
                    body,
                },
            ));
        };
        push(
            Class::Canonical,
            "canonical".into(),
            "POST",
            "application/json",
            std(&outputs),
        );
        for m in ["post", "Post", "pOsT", "PUT", "PATCH", "DELETE", "put"] {
            push(
                Class::Method,
                format!("method {m}"),
                m,
                "application/json",
                std(&outputs),
            );
        }
        let multi = cb.output.starts_with("..");
        let mut empties = vec!["[]", "[[]]", "[[],[]]", "[[[]]]", "{}", "null"];
        if multi {
            empties.push("[[],[[]]]");
        }
        for e in empties {
            for m in ["POST", "post"] {
                push(
                    Class::EmptyOutputs,
                    format!("outputs {e}, method {m}"),
                    m,
                    "application/json",
                    std(e),
                );
            }
        }
        if multi {
            let first = cb.outputs[0].to_string();
            let second = cb.outputs[1].to_string();
            for mix in [
                format!("[[],{second}]"),
                format!("[{first},[]]"),
                format!("[[{first}],[]]"),
            ] {
                push(
                    Class::EmptyOutputs,
                    format!("outputs {mix}"),
                    "post",
                    "application/json",
                    std(&mix),
                );
            }
        } else {
            push(
                Class::EmptyOutputs,
                "outputs [[]] + wildcard mix".into(),
                "POST",
                "application/json",
                std(&format!("[[],{outputs}]")),
            );
        }
        push(
            Class::EmptyOutputs,
            "no outputs".into(),
            "post",
            "application/json",
            body(&[("output", output.clone()), ("inputs", inputs.clone())]),
        );
        if cb.name != "open" {
            let theirs = open.outputs.to_string();
            push(
                Class::Disagreement,
                "outputs of another callback".into(),
                "POST",
                "application/json",
                std(&theirs),
            );
            push(
                Class::DuplicateKey,
                "outputs twice, theirs last".into(),
                "POST",
                "application/json",
                body(&[
                    ("output", output.clone()),
                    ("outputs", outputs.clone()),
                    ("outputs", theirs.clone()),
                    ("inputs", inputs.clone()),
                ]),
            );
            push(
                Class::DuplicateKey,
                "outputs twice, [] last".into(),
                "post",
                "application/json",
                body(&[
                    ("output", output.clone()),
                    ("outputs", theirs.clone()),
                    ("outputs", "[]".into()),
                    ("inputs", inputs.clone()),
                ]),
            );
            push(
                Class::DuplicateKey,
                "output twice, ours last".into(),
                "POST",
                "application/json",
                body(&[
                    ("output", json!(open.output).to_string()),
                    ("outputs", theirs.clone()),
                    ("output", output.clone()),
                    ("inputs", inputs.clone()),
                ]),
            );
            push(
                Class::DuplicateKey,
                "id twice".into(),
                "POST",
                "application/json",
                std(&outputs.replacen("\"id\":", "\"id\":\"open-result\",\"id\":", 1)),
            );
        }
        // Numeric forms of pattern ids: Python compares 1 == 1.0 == True.
        let numbers: &[(&str, &str)] = match cb.name {
            "row" => &[("index", "1")],
            "secret" => &[("n", "2")],
            "admin_rows" => &[("index", "0")],
            _ => &[],
        };
        for (key, n) in numbers {
            let forms: Vec<String> = match *n {
                "1" => vec![
                    // Exactly 1.0 to Python (correctly rounded).
                    "1.0000000000000001110223024625156".into(),
                    "10000000000000001110e-19".into(),
                    "1.0".into(),
                    "true".into(),
                    "1e0".into(),
                    "10e-1".into(),
                    "1.00000000000000001".into(),
                    "0.1e1".into(),
                ],
                "0" => vec!["0.0".into(), "false".into(), "-0".into(), "0e5".into()],
                _ => vec![
                    format!("{n}.0"),
                    format!("{n}e0"),
                    format!("{n}0e-1"),
                    format!("{n}.000"),
                ],
            };
            for form in forms {
                let o = outputs.replace(&format!("\"{key}\":{n}"), &format!("\"{key}\":{form}"));
                push(
                    Class::Number,
                    format!("{key} = {form}"),
                    "POST",
                    "application/json",
                    std(&o),
                );
                push(
                    Class::Number,
                    format!("{key} = {form}, method post"),
                    "post",
                    "application/json",
                    std(&o),
                );
            }
        }
        if cb.name == "row" {
            // Outputs name an unprotected row, the triggering input the protected one.
            let o = outputs.replace("\"index\":1", "\"index\":2");
            push(
                Class::Disagreement,
                "outputs row 2, input row 1".into(),
                "POST",
                "application/json",
                std(&o),
            );
            // Outputs and inputs name row 2; `changedPropIds` (whence
            // `ctx.triggered_id`) names the protected row 1.
            let inputs2 = inputs.replace("\"index\":1", "\"index\":2");
            push(
                Class::Disagreement,
                "changedPropIds row 1, the rest row 2".into(),
                "POST",
                "application/json",
                body(&[
                    ("output", output.clone()),
                    ("outputs", o.clone()),
                    ("inputs", inputs2),
                    (
                        "changedPropIds",
                        json!(["{\"index\":1,\"type\":\"row-button\"}.n_clicks"]).to_string(),
                    ),
                ]),
            );
        }
        // Escapes and encodings Python reads the same way.
        let escaped_output = output.replace('-', "\\u002d").replace('.', "\\u002e");
        let escaped_outputs = outputs.replace('-', "\\u002d");
        push(
            Class::Encoding,
            "unicode escapes".into(),
            "POST",
            "application/json",
            body(&[
                ("output", escaped_output),
                ("outputs", escaped_outputs),
                ("inputs", inputs.clone()),
            ]),
        );
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend(std(&outputs));
        push(
            Class::Encoding,
            "byte-order mark".into(),
            "POST",
            "application/json",
            bom,
        );
        let pretty = serde_json::to_vec_pretty(
            &json!({"inputs": cb.inputs, "outputs": cb.outputs, "output": cb.output}),
        )
        .unwrap();
        push(
            Class::Encoding,
            "pretty, reordered".into(),
            "POST",
            "application/json; charset=utf-8",
            pretty,
        );
        push(
            Class::Encoding,
            "text/plain".into(),
            "POST",
            "text/plain",
            std(&outputs),
        );
    }
    out
}

async fn send(client: &reqwest::Client, url: &str, e: &Entry) -> u16 {
    client
        .request(
            reqwest::Method::from_bytes(e.method.as_bytes()).unwrap(),
            url,
        )
        .header("content-type", e.content_type)
        .header("accept", "application/json")
        .body(e.body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Runs `e` and returns which counters moved.
async fn ran(
    targets: &Targets,
    client: &reqwest::Client,
    url: &str,
    e: &Entry,
) -> (u16, Vec<String>) {
    let before = targets.executed().await;
    let status = send(client, url, e).await;
    let after = targets.executed().await;
    let moved = after
        .iter()
        .filter(|(k, v)| before.get(*k).copied().unwrap_or(0) < **v)
        .map(|(k, _)| k.clone())
        .collect();
    (status, moved)
}

#[tokio::test]
async fn no_request_runs_a_protected_callback_for_a_user_without_its_role() {
    let targets = Targets::start().await;
    let s = Setup::in_front_of(targets.addr, RULES, DevIdpConfig::default()).await;
    let cbs = callbacks(&targets).await;
    let corpus = corpus(&cbs);
    assert!(corpus.len() > 150, "corpus of {}", corpus.len());

    let reader = s.browser();
    reader.sign_in("reader", "/dash/").await;
    let writer = s.browser();
    writer.sign_in("writer", "/dash/").await;
    let direct = reqwest::Client::new();
    let direct_url = format!("http://{}{CALLBACK}", targets.addr);

    let mut bypasses = Vec::new();
    let mut dash_ran: HashMap<Class, usize> = HashMap::new();
    for (i, e) in &corpus {
        let cb = &cbs[*i];
        // Straight at Dash: does this request run a protected callback?
        let (_, moved) = ran(&targets, &direct, &direct_url, e).await;
        let protected_ran = moved
            .iter()
            .any(|m| cbs.iter().any(|c| c.name == m && c.role > 0));
        if protected_ran {
            *dash_ran.entry(e.class).or_default() += 1;
        }
        // Through aadgate as users below the role: nothing protected may run.
        for (user, b, rank) in [("reader", &reader, 0), ("writer", &writer, 1)] {
            let (status, moved) = ran(&targets, &b.client, &b.url(CALLBACK), e).await;
            for m in moved {
                let role = cbs.iter().find(|c| c.name == m).map_or(0, |c| c.role);
                if role > rank {
                    bypasses.push(format!(
                        "{user} ran {m} with [{}] (status {status})",
                        e.label
                    ));
                }
            }
            if status >= 500 && cb.role > rank {
                bypasses.push(format!("{user}: [{}] reached Dash ({status})", e.label));
            }
        }
    }
    assert!(bypasses.is_empty(), "bypasses:\n{}", bypasses.join("\n"));
    // The corpus is worth something: Dash itself runs protected callbacks
    // for every class of trick, which aadgate refused above.
    for class in [
        Class::Canonical,
        Class::Method,
        Class::EmptyOutputs,
        Class::Number,
        Class::Encoding,
    ] {
        assert!(
            dash_ran.get(&class).copied().unwrap_or(0) > 0,
            "Dash ran no protected callback for {class:?}: {dash_ran:?}"
        );
    }

    // Nothing legitimate is refused: each callback runs, through aadgate,
    // for a user with its role, in the renderer's own form.
    let admin = s.browser();
    admin.sign_in("admin", "/dash/").await;
    for (i, e) in corpus.iter().filter(|(_, e)| e.class == Class::Canonical) {
        let cb = &cbs[*i];
        let b: &Browser = match cb.role {
            0 => &reader,
            1 => &writer,
            _ => &admin,
        };
        let (status, moved) = ran(&targets, &b.client, &b.url(CALLBACK), e).await;
        assert_eq!(status, 200, "{}", e.label);
        assert_eq!(moved, [cb.name.to_owned()], "{}", e.label);
    }
}
