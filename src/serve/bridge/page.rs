//! The bridge's HTML: the consent page and the error page. Plain HTML and inline style, no
//! script; every value from a client or a request is escaped.

/// The headers every page carries: no script, no framing, no caching, no referrer.
pub const HEADERS: [(&str, &str); 6] = [
    ("content-type", "text/html; charset=utf-8"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
];

/// The consent page's policy: [`HEADERS`]' one, with `form-action` also allowing the origin
/// of the client's redirect URI. Browsers apply `form-action` to the redirects that answer a
/// form's POST too (Chromium refuses "to send form data" there), so with `'self'` alone the
/// code never reached a client on another origin. An origin no source expression can name
/// (an IPv6 literal, an unexpected character) allows its scheme instead.
pub fn consent_csp(redirect_uri: &str) -> String {
    let (scheme, rest) = redirect_uri.split_once("://").unwrap_or(("https", ""));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let nameable = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    let scheme = if scheme == "http" { "http" } else { "https" };
    let target = if nameable {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}:")
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {target}; \
         frame-ancestors 'none'"
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}code{word-break:break-all}label{display:block;margin-top:1rem;\
font-weight:600}input[type=password]{width:100%;padding:.4rem;font:inherit}\
.buttons{margin-top:1rem}button{font:inherit;padding:.4rem 1rem;margin-right:.5rem}\
.error{border:2px solid #b00020;padding:.5rem;color:#b00020}";

/// `s` safe inside HTML text and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

/// What the consent page shows and posts back.
pub struct Consent<'a> {
    /// Where the form posts.
    pub action: &'a str,
    pub client_id: &'a str,
    pub client_name: Option<&'a str>,
    /// The host the code will be sent to.
    pub redirect_host: &'a str,
    /// The scopes asked for (empty: the key's permissions).
    pub scopes: &'a [String],
    pub request: &'a str,
    pub csrf: &'a str,
    /// Why the last key was refused, if it was.
    pub error: Option<&'a str>,
}

/// The consent page: who asks, for what, and a field for the key.
pub fn consent(c: &Consent<'_>) -> String {
    let who = match c.client_name {
        Some(n) => format!(
            "<strong>{}</strong> (<code>{}</code>)",
            escape(n),
            escape(c.client_id)
        ),
        None => format!("<code>{}</code>", escape(c.client_id)),
    };
    let scopes = if c.scopes.is_empty() {
        "<p>It asks for every permission of the key you give.</p>".to_string()
    } else {
        let items: String = c
            .scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", escape(s)))
            .collect();
        format!("<p>It asks for these permissions:</p><ul>{items}</ul>")
    };
    let error = c.error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"key-error\">{}</p>",
            escape(e)
        )
    });
    let described = if c.error.is_some() {
        " aria-describedby=\"key-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    document(
        "Allow access with a key",
        &format!(
            "<h1>Allow access with a key</h1>\
             <p>The client {who} asks for access to this server on your behalf. Its answer \
             goes to <code>{host}</code>.</p>{scopes}{error}\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"key\">Your key</label>\
             <input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"off\" \
             spellcheck=\"false\" required{described}>\
             <p>The client receives a token limited to these permissions, valid while the \
             key is; the key itself is never given to it.</p>\
             <div class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"allow\">\
             Allow</button><button type=\"submit\" name=\"decision\" value=\"deny\" \
             formnovalidate>Deny</button></div></form>",
            host = escape(c.redirect_host),
            action = escape(c.action),
            request = escape(c.request),
            csrf = escape(c.csrf),
        ),
    )
}

/// A page saying why an authorization request cannot go on (used while the redirect URI
/// is not trusted, so nothing is sent back to the client).
pub fn error(message: &str) -> String {
    document(
        "Authorization refused",
        &format!(
            "<h1>Authorization refused</h1><p class=\"error\" role=\"alert\">{}</p>\
             <p>Nothing was sent to the client. Start again from the client.</p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_may_lead_to_the_redirect_uri_and_nowhere_else() {
        assert_eq!(
            consent_csp("http://127.0.0.1:8123/callback?x=1"),
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' \
             http://127.0.0.1:8123; frame-ancestors 'none'"
        );
        assert!(consent_csp("https://client.example/cb")
            .contains("form-action 'self' https://client.example;"));
        assert!(consent_csp("http://[::1]:9/cb").contains("form-action 'self' http:;"));
        assert!(consent_csp("https://a;script-src*/cb").contains("form-action 'self' https:;"));
    }

    #[test]
    fn what_a_client_says_about_itself_is_escaped() {
        let scopes = vec!["tools:call".to_string()];
        let page = consent(&Consent {
            action: "/authorize",
            client_id: "https://evil.example/\"><script>x</script>",
            client_name: Some("<img src=x onerror=alert(1)>"),
            redirect_host: "evil.example",
            scopes: &scopes,
            request: "r",
            csrf: "c",
            error: Some("<b>"),
        });
        assert!(!page.contains("<script") && !page.contains("<img") && !page.contains("<b>"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("<label for=\"key\">") && page.contains("lang=\"en\""));
    }
}
