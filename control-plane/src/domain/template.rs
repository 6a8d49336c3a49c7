//! `{{placeholder}}` filling for agent instructions.
//!
//! Values come, lowest priority first, from the customer (`customer.name`,
//! `customer.phone`, and bare `name` / `phone`), the customer's variables, then the
//! call's (or campaign target's) variables. Unknown placeholders are left as they are,
//! so a typo shows in the transcript instead of silently vanishing.

use std::collections::BTreeMap;

use super::CallSession;

/// The variables visible to the templates of `session`.
pub fn variables_for(session: &CallSession) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let customer = &session.customer;
    for (key, value) in [("name", &customer.name), ("phone", &customer.phone)] {
        if !value.is_empty() {
            vars.insert(key.to_owned(), value.clone());
            vars.insert(format!("customer.{key}"), value.clone());
        }
    }
    vars.extend(
        customer
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    vars.extend(
        session
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    vars
}

/// Replaces every `{{ key }}` in `template` whose key is in `vars`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let key = after[..end].trim();
        match vars.get(key) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallDirection, CallSession};

    #[test]
    fn fills_customer_and_call_variables_with_call_variables_winning() {
        let mut session = CallSession::new(
            CallDirection::Outbound,
            "+815011112222".into(),
            "+819012345678".into(),
            crate::domain::now(),
        );
        session.customer.name = "山田太郎".into();
        session
            .customer
            .variables
            .insert("plan".into(), "basic".into());
        session.variables.insert("plan".into(), "premium".into());
        let vars = variables_for(&session);
        let text = render(
            "こんにちは{{name}}様 ({{ customer.name }}), plan={{plan}}, {{unknown}} {{",
            &vars,
        );
        assert_eq!(
            text,
            "こんにちは山田太郎様 (山田太郎), plan=premium, {{unknown}} {{"
        );
    }
}
