//! The one permission rule: what a key's permissions grant.

/// The permissions with a name form: holding one grants `<it>:<NAME>` for every NAME.
const NAMED: [&str; 2] = ["tools:call", "prompts:get"];

/// The broad permission that grants `required` besides itself: `tools:call` for
/// `tools:call:NAME`, `prompts:get` for `prompts:get:NAME`, none for anything else
/// (`resources:read` has no name form).
pub(crate) fn broader(required: &str) -> Option<&'static str> {
    NAMED.into_iter().find(|b| {
        required
            .strip_prefix(b)
            .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// Whether a key holding `held` has the permission `required`: `held` holds it exactly, or
/// `required` is `tools:call:NAME` and `held` holds `tools:call`, or it is
/// `prompts:get:NAME` and `held` holds `prompts:get` (docs/verifier.md). Matching is exact and
/// case-sensitive otherwise; a narrow permission never grants a broad one. Every place that
/// checks a permission uses this rule: [`crate::Verifier::verify`], the tower layer, the
/// refusals of [`crate::rpc`].
///
/// ```
/// use mcp_key_verifier::permits;
/// let held = vec!["tools:call".to_string(), "info".to_string()];
/// assert!(permits(&held, "tools:call:mul"));
/// assert!(permits(&held, "info"));
/// assert!(!permits(&held, "prompts:get:greet"));
/// assert!(!permits(&["tools:call:add".to_string()], "tools:call:mul"));
/// assert!(!permits(&["resources:read".to_string()], "resources:read:x"));
/// ```
pub fn permits(held: &[String], required: &str) -> bool {
    held.iter().any(|p| p == required)
        || broader(required).is_some_and(|b| held.iter().any(|p| p == b))
}
