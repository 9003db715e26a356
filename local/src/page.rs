//! What a browser sees at `/`.

use axum::response::Html;
use jobcast::store::Store;

use crate::App;

pub(crate) fn landing<S: Store>(app: &App<S>) -> Html<String> {
    let connections = app.registry.len();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobcast-local</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}}code{{background:#f3f3f3;padding:.1rem .3rem}}</style>
</head><body>
<h1>jobcast-local</h1>
<p>An API Gateway WebSocket emulator running jobcast's real handlers. {connections} connection(s) open.</p>
<ul>
<li>WebSocket: <code>ws://HOST/</code> — send <code>{{"action":"subscribe","job_id":"demo-1"}}</code></li>
<li>Management API: <code>POST|GET|DELETE /@connections/{{connection_id}}</code></li>
<li>Sender (Lambda Invoke API): <code>POST /2015-03-31/functions/sender/invocations</code></li>
<li>Health: <code>GET /health</code></li>
</ul>
</body></html>"#
    ))
}
