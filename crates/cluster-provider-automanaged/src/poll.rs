//! Polling one peer's health endpoint.

use std::time::Duration;

use protoactor_cluster::Error;

use crate::health::MemberInfo;

/// Larger answers are not a member's (it is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The HTTP client shared by all polls of one provider.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        // Health checks go straight to the peer, whatever proxy the environment names.
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| Error::Provider(format!("automanaged: cannot create the HTTP client: {e}")))
}

/// Asks `url` for its member info; `Err` says why the answer does not count.
pub(crate) async fn poll(client: &reqwest::Client, url: &reqwest::Url) -> Result<MemberInfo, String> {
    let mut response = client.get(url.clone()).send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered HTTP {status}; is this a protoactor member's health address?"));
    }
    if response.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err("answered too much to be a protoactor member".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err("answered too much to be a protoactor member".into());
        }
    }
    serde_json::from_slice::<MemberInfo>(&body).map_err(|e| format!("not a protoactor member's answer: {e}"))
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's top-level message omits the cause (refused, reset, ...).
    let mut text = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
