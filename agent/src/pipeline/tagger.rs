//! Stamps the release identity onto resources.

use bellwether_proto::otlp::common::{AnyValue, KeyValue};
use bellwether_proto::otlp::resource::Resource;

use crate::identity::{attr, Identity};
use crate::otlp::{as_str, string_kv};

/// Sets the identity attributes on every resource it is given. An application's own,
/// differing value is kept under `bellwether.app.<attribute>`; the deprecated
/// `deployment.environment` is replaced by `deployment.environment.name`.
#[derive(Debug, Clone)]
pub struct Tagger {
    attributes: Vec<(&'static str, String)>,
    environment: String,
}

impl Tagger {
    pub fn new(identity: &Identity) -> Self {
        Self {
            attributes: identity
                .attributes()
                .into_iter()
                .map(|(k, v)| (k, v.to_owned()))
                .collect(),
            environment: identity.environment.clone(),
        }
    }

    pub fn tag(&self, resource: &mut Option<Resource>) {
        let resource = resource.get_or_insert_with(Resource::default);
        let attrs = &mut resource.attributes;
        for (key, ours) in &self.attributes {
            for old in take_all(attrs, key) {
                if as_str(old.as_ref()) != Some(ours.as_str()) {
                    keep_app_value(attrs, key, old);
                }
            }
            attrs.push(string_kv(*key, ours.as_str()));
        }
        for old in take_all(attrs, attr::ENVIRONMENT_DEPRECATED) {
            if as_str(old.as_ref()) != Some(self.environment.as_str()) {
                keep_app_value(attrs, attr::ENVIRONMENT_DEPRECATED, old);
            }
        }
    }
}

/// Removes every attribute named `key` (OTLP forbids duplicates, but input is not
/// trusted) and returns their values.
fn take_all(attrs: &mut Vec<KeyValue>, key: &str) -> Vec<Option<AnyValue>> {
    let mut taken = Vec::new();
    attrs.retain_mut(|kv| {
        if kv.key == key {
            taken.push(kv.value.take());
            false
        } else {
            true
        }
    });
    taken
}

/// Keeps the application's value; the first one kept wins, so a resource that passed
/// through two agents keeps the original application's value.
fn keep_app_value(attrs: &mut Vec<KeyValue>, key: &str, value: Option<AnyValue>) {
    let app_key = format!("{}{key}", attr::APP_PREFIX);
    if value.is_some() && !attrs.iter().any(|kv| kv.key == app_key) {
        attrs.push(KeyValue {
            key: app_key,
            value,
            ..KeyValue::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use bellwether_proto::otlp::common::any_value::Value;

    use super::*;
    use crate::otlp::kv;

    fn identity() -> Identity {
        Identity {
            service: "checkout".into(),
            version: "1.4.2".into(),
            environment: "prod".into(),
            instance_id: "pod-7".into(),
            commit: Some("9f1c2e7".into()),
            deploy_id: None,
            team: Some("payments".into()),
        }
    }

    fn get<'a>(resource: &'a Resource, key: &str) -> Vec<&'a Value> {
        resource
            .attributes
            .iter()
            .filter(|kv| kv.key == key)
            .filter_map(|kv| kv.value.as_ref()?.value.as_ref())
            .collect()
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    #[test]
    fn fills_an_absent_resource() {
        let mut resource = None;
        Tagger::new(&identity()).tag(&mut resource);
        let resource = resource.expect("created");
        assert_eq!(get(&resource, "service.name"), [&s("checkout")]);
        assert_eq!(get(&resource, "service.version"), [&s("1.4.2")]);
        assert_eq!(get(&resource, "deployment.environment.name"), [&s("prod")]);
        assert_eq!(get(&resource, "service.instance.id"), [&s("pod-7")]);
        assert_eq!(get(&resource, "vcs.ref.head.revision"), [&s("9f1c2e7")]);
        assert_eq!(get(&resource, "bellwether.team"), [&s("payments")]);
        assert!(get(&resource, "deployment.id").is_empty());
        assert_eq!(resource.attributes.len(), 6);
    }

    #[test]
    fn conflicting_app_values_are_kept_under_app_prefix() {
        let mut resource = Some(Resource {
            attributes: vec![
                string_kv("service.name", "legacy-name"),
                string_kv("service.version", "1.4.2"),
                kv("service.instance.id", Value::IntValue(3)),
                string_kv("deployment.id", "app-deploy"),
                string_kv("host.name", "node-1"),
            ],
            ..Resource::default()
        });
        Tagger::new(&identity()).tag(&mut resource);
        let resource = resource.expect("present");
        assert_eq!(get(&resource, "service.name"), [&s("checkout")]);
        assert_eq!(
            get(&resource, "bellwether.app.service.name"),
            [&s("legacy-name")]
        );
        // Same value: nothing extra kept.
        assert!(get(&resource, "bellwether.app.service.version").is_empty());
        assert_eq!(get(&resource, "service.version"), [&s("1.4.2")]);
        // Different type counts as different.
        assert_eq!(
            get(&resource, "bellwether.app.service.instance.id"),
            [&Value::IntValue(3)]
        );
        // Unknown to the agent: the app's value stays as is.
        assert_eq!(get(&resource, "deployment.id"), [&s("app-deploy")]);
        assert_eq!(get(&resource, "host.name"), [&s("node-1")]);
    }

    #[test]
    fn deprecated_environment_is_replaced() {
        let mut same = Some(Resource {
            attributes: vec![string_kv("deployment.environment", "prod")],
            ..Resource::default()
        });
        Tagger::new(&identity()).tag(&mut same);
        let same = same.expect("present");
        assert!(get(&same, "deployment.environment").is_empty());
        assert!(get(&same, "bellwether.app.deployment.environment").is_empty());
        assert_eq!(get(&same, "deployment.environment.name"), [&s("prod")]);

        let mut differing = Some(Resource {
            attributes: vec![string_kv("deployment.environment", "staging")],
            ..Resource::default()
        });
        Tagger::new(&identity()).tag(&mut differing);
        let differing = differing.expect("present");
        assert!(get(&differing, "deployment.environment").is_empty());
        assert_eq!(
            get(&differing, "bellwether.app.deployment.environment"),
            [&s("staging")]
        );
    }

    #[test]
    fn duplicates_collapse_and_existing_app_value_is_not_overwritten() {
        let mut resource = Some(Resource {
            attributes: vec![
                string_kv("service.name", "a"),
                string_kv("service.name", "b"),
                string_kv("bellwether.app.service.name", "original"),
            ],
            ..Resource::default()
        });
        Tagger::new(&identity()).tag(&mut resource);
        let resource = resource.expect("present");
        assert_eq!(get(&resource, "service.name"), [&s("checkout")]);
        assert_eq!(
            get(&resource, "bellwether.app.service.name"),
            [&s("original")]
        );
    }

    #[test]
    fn tagging_twice_is_stable() {
        let tagger = Tagger::new(&identity());
        let mut resource = Some(Resource {
            attributes: vec![string_kv("service.name", "legacy")],
            ..Resource::default()
        });
        tagger.tag(&mut resource);
        let once = resource.clone();
        tagger.tag(&mut resource);
        let mut a = once.expect("present").attributes;
        let mut b = resource.expect("present").attributes;
        a.sort_by(|x, y| x.key.cmp(&y.key));
        b.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(a, b);
    }
}
