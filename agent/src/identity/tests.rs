use super::*;

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn resolve_with(
    flags: &IdentityFlags,
    env: &EnvMap,
    file: Option<&ReleaseFile>,
    etc_hostname: Option<&str>,
) -> Result<Identity, IdentityError> {
    resolve(
        IdentityInputs {
            flags,
            env,
            release_file: file,
            k8s_labels: None,
            etc_hostname,
        },
        || "random-id".to_owned(),
    )
}

fn file(text: &str) -> ReleaseFile {
    parse_release_file(text).expect("valid release file")
}

const FULL_FILE: &str = "BELLWETHER_SERVICE=file-svc\nBELLWETHER_VERSION=file-ver\n\
    BELLWETHER_ENVIRONMENT=file-env\nBELLWETHER_INSTANCE_ID=file-inst\nBELLWETHER_COMMIT=file-commit\n\
    BELLWETHER_DEPLOY_ID=file-deploy\nBELLWETHER_TEAM=file-team\n";

const FULL_OTEL: &str = "service.name=otel-svc,service.version=otel-ver,\
    deployment.environment.name=otel-env,service.instance.id=otel-inst,\
    vcs.ref.head.revision=otel-commit,deployment.id=otel-deploy,bellwether.team=otel-team";

fn full_env() -> EnvMap {
    let mut map = env(&[("OTEL_RESOURCE_ATTRIBUTES", FULL_OTEL)]);
    for field in Field::ALL {
        map.insert(field.env_var().to_owned(), format!("env-{field:?}"));
    }
    map
}

fn full_flags() -> IdentityFlags {
    IdentityFlags {
        service: Some("flag-svc".into()),
        version: Some("flag-ver".into()),
        environment: Some("flag-env".into()),
        instance_id: Some("flag-inst".into()),
        commit: Some("flag-commit".into()),
        deploy_id: Some("flag-deploy".into()),
        team: Some("flag-team".into()),
    }
}

#[test]
fn flags_beat_everything() {
    let release = file(FULL_FILE);
    let id = resolve_with(&full_flags(), &full_env(), Some(&release), Some("host")).expect("ok");
    assert_eq!(
        id,
        Identity {
            service: "flag-svc".into(),
            version: "flag-ver".into(),
            environment: "flag-env".into(),
            instance_id: "flag-inst".into(),
            commit: Some("flag-commit".into()),
            deploy_id: Some("flag-deploy".into()),
            team: Some("flag-team".into()),
        }
    );
}

#[test]
fn bellwether_env_beats_otel_and_release_file() {
    let release = file(FULL_FILE);
    let id =
        resolve_with(&IdentityFlags::default(), &full_env(), Some(&release), None).expect("ok");
    assert_eq!(id.service, "env-Service");
    assert_eq!(id.version, "env-Version");
    assert_eq!(id.environment, "env-Environment");
    assert_eq!(id.instance_id, "env-InstanceId");
    assert_eq!(id.commit.as_deref(), Some("env-Commit"));
    assert_eq!(id.deploy_id.as_deref(), Some("env-DeployId"));
    assert_eq!(id.team.as_deref(), Some("env-Team"));
}

#[test]
fn otel_attributes_beat_release_file() {
    let release = file(FULL_FILE);
    let env = env(&[("OTEL_RESOURCE_ATTRIBUTES", FULL_OTEL)]);
    let id = resolve_with(&IdentityFlags::default(), &env, Some(&release), None).expect("ok");
    assert_eq!(id.service, "otel-svc");
    assert_eq!(id.version, "otel-ver");
    assert_eq!(id.environment, "otel-env");
    assert_eq!(id.instance_id, "otel-inst");
    assert_eq!(id.commit.as_deref(), Some("otel-commit"));
    assert_eq!(id.deploy_id.as_deref(), Some("otel-deploy"));
    assert_eq!(id.team.as_deref(), Some("otel-team"));
}

#[test]
fn otel_service_name_beats_resource_attribute() {
    let env = env(&[
        ("OTEL_SERVICE_NAME", "named"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=attr,service.version=1",
        ),
    ]);
    let id = resolve_with(&IdentityFlags::default(), &env, None, None).expect("ok");
    assert_eq!(id.service, "named");
    assert_eq!(id.version, "1");
}

#[test]
fn otel_deprecated_environment_is_used_when_current_is_absent() {
    let env = env(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=s,service.version=1,deployment.environment=staging",
    )]);
    let id = resolve_with(&IdentityFlags::default(), &env, None, None).expect("ok");
    assert_eq!(id.environment, "staging");
}

#[test]
fn release_file_is_the_last_resort() {
    let release = file(FULL_FILE);
    let id = resolve_with(
        &IdentityFlags::default(),
        &EnvMap::new(),
        Some(&release),
        None,
    )
    .expect("ok");
    assert_eq!(id.service, "file-svc");
    assert_eq!(id.version, "file-ver");
    assert_eq!(id.environment, "file-env");
    assert_eq!(id.instance_id, "file-inst");
    assert_eq!(id.commit.as_deref(), Some("file-commit"));
    assert_eq!(id.deploy_id.as_deref(), Some("file-deploy"));
    assert_eq!(id.team.as_deref(), Some("file-team"));
}

#[test]
fn empty_values_count_as_absent() {
    let flags = IdentityFlags {
        service: Some("  ".into()),
        ..IdentityFlags::default()
    };
    let env = env(&[("BELLWETHER_SERVICE", ""), ("BELLWETHER_VERSION", "1")]);
    let release = file("service.name=from-file");
    let id = resolve_with(&flags, &env, Some(&release), None).expect("ok");
    assert_eq!(id.service, "from-file");
}

#[test]
fn instance_id_fallback_chain() {
    let base = env(&[("BELLWETHER_SERVICE", "s"), ("BELLWETHER_VERSION", "1")]);
    let flags = IdentityFlags::default();

    let mut with_pod = base.clone();
    with_pod.insert("POD_NAME".into(), "pod-1".into());
    with_pod.insert("HOSTNAME".into(), "host-env".into());
    let id = resolve_with(&flags, &with_pod, None, Some("etc-host")).expect("ok");
    assert_eq!(id.instance_id, "pod-1");

    let mut with_host = base.clone();
    with_host.insert("HOSTNAME".into(), "host-env".into());
    let id = resolve_with(&flags, &with_host, None, Some("etc-host")).expect("ok");
    assert_eq!(id.instance_id, "host-env");

    let id = resolve_with(&flags, &base, None, Some("etc-host\n")).expect("ok");
    assert_eq!(id.instance_id, "etc-host");

    let id = resolve_with(&flags, &base, None, None).expect("ok");
    assert_eq!(id.instance_id, "random-id");
}

#[test]
fn environment_defaults_to_unknown_and_optionals_to_none() {
    let env = env(&[("BELLWETHER_SERVICE", "s"), ("BELLWETHER_VERSION", "1")]);
    let id = resolve_with(&IdentityFlags::default(), &env, None, Some("h")).expect("ok");
    assert_eq!(id.environment, "unknown");
    assert_eq!((id.commit, id.deploy_id, id.team), (None, None, None));
}

#[test]
fn missing_service_or_version_is_an_error_naming_the_setting() {
    let err = resolve_with(
        &IdentityFlags::default(),
        &env(&[("BELLWETHER_VERSION", "1")]),
        None,
        None,
    )
    .expect_err("no service");
    assert!(matches!(err, IdentityError::MissingService));
    let message = err.to_string();
    assert!(message.contains("--service") && message.contains("BELLWETHER_SERVICE"));
    assert!(!message.contains('\n'));

    let err = resolve_with(
        &IdentityFlags::default(),
        &env(&[("OTEL_SERVICE_NAME", "s")]),
        None,
        None,
    )
    .expect_err("no version");
    assert!(matches!(err, IdentityError::MissingVersion));
    assert!(err.to_string().contains("BELLWETHER_VERSION"));
}

#[test]
fn attributes_skip_unknown_optionals() {
    let id = Identity {
        service: "s".into(),
        version: "1".into(),
        environment: "prod".into(),
        instance_id: "i".into(),
        commit: Some("abc".into()),
        deploy_id: None,
        team: None,
    };
    let keys: Vec<_> = id.attributes().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            attr::SERVICE_NAME,
            attr::SERVICE_VERSION,
            attr::ENVIRONMENT,
            attr::INSTANCE_ID,
            attr::COMMIT
        ]
    );
}

#[test]
fn the_labels_file_comes_after_the_release_file() {
    let labels = crate::identity::parse_labels_file(
        "app.kubernetes.io/name=\"from-labels\"\napp.kubernetes.io/version=\"9\"\nbellwether.io/team=\"t\"\n",
    )
    .expect("valid labels");
    let release = file("BELLWETHER_VERSION=2.0.0\n");
    let id = resolve(
        IdentityInputs {
            flags: &IdentityFlags::default(),
            env: &EnvMap::new(),
            release_file: Some(&release),
            k8s_labels: Some(&labels),
            etc_hostname: None,
        },
        || "random-id".to_owned(),
    )
    .expect("resolves");
    assert_eq!(id.service, "from-labels");
    assert_eq!(id.version, "2.0.0", "the release file wins over the labels");
    assert_eq!(id.team.as_deref(), Some("t"));
}
