use super::*;
use crate::registry::redact_password;

/// A trimmed real nova.conf: options of other programs, sections we do not own, SQLAlchemy URLs.
const NOVA_CONF: &str = "\
[DEFAULT]
debug = True
log_dir = /var/log/nova
state_path = /var/lib/nova
my_ip = 10.0.0.11
use_rootwrap_daemon = True
compute_driver = libvirt.LibvirtDriver
instances_path = /var/lib/nova/instances
transport_url = rabbit://openstack:RABBIT_PASS@controller:5672/
host = compute1
report_interval = 15
service_down_time = 90
periodic_fuzzy_delay = 30
executor_thread_pool_size = 32
scheduler_manager = nova.scheduler.manager.SchedulerManager

[api]
auth_strategy = keystone

[api_database]
connection = mysql+pymysql://nova:NOVA_DBPASS@controller/nova_api

[database]
connection = mysql+pymysql://nova:NOVA_DBPASS@controller/nova

[keystone_authtoken]
www_authenticate_uri = http://controller:5000/
password = NOVA_PASS

[oslo_messaging_rabbit]
amqp_durable_queues = true
rabbit_qos_prefetch_count = 64

[upgrade_levels]
compute = auto
scheduler = 4.5
conductor = 2023.1
";

fn load(text: &str) -> Result<Loaded, ConfigError> {
    ConfigLoader::new().text("nova.conf", text).load()
}

#[test]
fn defaults_are_oslo_and_nova_defaults() {
    let config = ConfigLoader::new().load().unwrap().config;
    assert_eq!(config, Config::default());
    assert_eq!(config.report_interval, Duration::from_secs(10));
    assert_eq!(config.service_down_time, Duration::from_secs(60));
    assert!(config.periodic_enable);
    assert_eq!(config.periodic_fuzzy_delay, Duration::from_secs(60));
    assert_eq!(config.rpc_response_timeout, Duration::from_secs(60));
    assert_eq!(config.executor_thread_pool_size, 64);
    assert_eq!(config.graceful_shutdown_timeout, Duration::from_secs(60));
    assert_eq!(config.control_exchange, "openstack");
    assert_eq!(config.effective_transport_url().scheme(), "memory");
}

#[test]
fn a_real_nova_conf_loads_without_warnings() {
    let loaded = load(NOVA_CONF).unwrap();
    assert_eq!(loaded.warnings, Vec::new());
    let c = loaded.config;
    assert_eq!(c.host.as_deref(), Some("compute1"));
    assert_eq!(c.report_interval, Duration::from_secs(15));
    assert_eq!(c.service_down_time, Duration::from_secs(90));
    assert_eq!(c.periodic_fuzzy_delay, Duration::from_secs(30));
    assert_eq!(c.executor_thread_pool_size, 32);
    // oslo.log's options: debug, and the folder the program's log file goes in.
    assert!(c.logging.debug);
    assert_eq!(
        c.logging.log_path("nova-scheduler"),
        Some(std::path::PathBuf::from("/var/log/nova/nova-scheduler.log"))
    );
    assert_eq!(
        c.manager("scheduler"),
        Some("nova.scheduler.manager.SchedulerManager")
    );
    assert_eq!(
        c.database_connection.as_ref().unwrap().expose(),
        "mysql+pymysql://nova:NOVA_DBPASS@controller/nova"
    );
    assert_eq!(c.upgrade_level("compute"), Some(&UpgradeLevel::Auto));
    assert_eq!(
        c.upgrade_level("scheduler"),
        Some(&UpgradeLevel::Version(Version::new(4, 5)))
    );
    assert_eq!(
        c.upgrade_level("conductor"),
        Some(&UpgradeLevel::Alias("2023.1".into()))
    );
    let url = c.effective_transport_url();
    assert_eq!(url.option("amqp_durable_queues"), Some("true"));
    assert_eq!(url.option("rabbit_qos_prefetch_count"), Some("64"));
    // Sections the runtime does not read are kept for the application.
    assert_eq!(c.option("api", "auth_strategy"), Some("keystone"));
    assert_eq!(c.option("DEFAULT", "my_ip"), Some("10.0.0.11"));
    assert_eq!(c.option("api", "missing"), None);
    // Secrets never show.
    let shown = format!("{c:?}");
    assert!(shown.contains("keystone_authtoken.password"), "{shown}");
    assert!(
        !shown.contains("RABBIT_PASS")
            && !shown.contains("NOVA_DBPASS")
            && !shown.contains("NOVA_PASS"),
        "{shown}"
    );
}

#[test]
fn a_misspelled_option_is_a_warning_naming_the_known_one() {
    let loaded = load(
        "[DEFAULT]\nreport_intervall = 5\nperiodic_enabled = false\ndebug = true\n\
         [upgrade_levels]\nschedular = 4.0\n[oslo_messaging_rabbit]\nrabbit_qos_prefech_count = 1\n",
    )
    .unwrap();
    let seen: Vec<(String, Option<String>, String)> = loaded
        .warnings
        .iter()
        .map(|w| (w.key.clone(), w.suggestion.clone(), w.origin.to_string()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "periodic_enabled".into(),
                Some("periodic_enable".into()),
                "nova.conf:3".into()
            ),
            (
                "report_intervall".into(),
                Some("report_interval".into()),
                "nova.conf:2".into()
            ),
            (
                "rabbit_qos_prefech_count".into(),
                Some("rabbit_qos_prefetch_count".into()),
                "nova.conf:8".into()
            ),
            (
                "schedular".into(),
                Some("scheduler".into()),
                "nova.conf:6".into()
            ),
        ]
    );
    // The misspelled keys are not read; `debug` (another program's option) is not reported.
    assert_eq!(loaded.config.report_interval, Duration::from_secs(10));
    assert!(loaded.config.periodic_enable);
    assert!(loaded.config.upgrade_levels.contains_key("schedular"));
    let message = loaded.warnings[1].to_string();
    assert!(
        message.contains("did you mean `report_interval`?"),
        "{message}"
    );
}

#[test]
fn a_bad_value_names_the_file_line_and_key() {
    let err = load("[DEFAULT]\nhost = a\n\nreport_interval = ten\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "nova.conf:4: [DEFAULT] report_interval: expected whole seconds, not `ten`"
    );
    let err = load("[DEFAULT]\nperiodic_enable = maybe\n").unwrap_err();
    assert!(err.to_string().contains("expected true or false"), "{err}");
    let err = load("[DEFAULT]\nexecutor_thread_pool_size = 0\n").unwrap_err();
    assert!(err.to_string().contains("positive whole number"), "{err}");
    let err = load("[DEFAULT]\nservice_down_time = 0\n").unwrap_err();
    assert!(err.to_string().contains("at least 1 second"), "{err}");
    let err = load("[upgrade_levels]\nscheduler = 4.x!\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("nova.conf:2: [upgrade_levels] scheduler"),
        "{err}"
    );
    let err = load("[DEFAULT]\ntransport_url = kafka://u:hunter2@h/\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("nova.conf:2: [DEFAULT] transport_url"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn syntax_and_read_errors_name_the_file() {
    let err = load("[DEFAULT\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "nova.conf:1: a section header must end with `]`"
    );
    let err = ConfigLoader::new()
        .file("/nonexistent/nova.conf")
        .load()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/nova.conf"), "{err}");
}

#[test]
fn environment_then_flags_override_files() {
    let loaded = ConfigLoader::new()
        .text(
            "a.conf",
            "[DEFAULT]\nhost = from-file\nreport_interval = 5\nservice_down_time = 50\n",
        )
        .text("b.conf", "[DEFAULT]\nreport_interval = 6\n")
        .env([
            ("OS_DEFAULT__SERVICE_DOWN_TIME".to_owned(), "70".to_owned()),
            ("OS_DEFAULT__HOST".to_owned(), "from-env".to_owned()),
            ("OS_UPGRADE_LEVELS__COMPUTE".to_owned(), "5.0".to_owned()),
            (
                "OS_DATABASE__CONNECTION".to_owned(),
                "sqlite::memory:".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ])
        .set("DEFAULT", "host", "from-flag")
        .load()
        .unwrap();
    let c = loaded.config;
    assert_eq!(c.host.as_deref(), Some("from-flag"));
    assert_eq!(c.report_interval, Duration::from_secs(6));
    assert_eq!(c.service_down_time, Duration::from_secs(70));
    assert_eq!(
        c.upgrade_level("compute"),
        Some(&UpgradeLevel::Version(Version::new(5, 0)))
    );
    assert_eq!(
        c.database_connection.map(|d| d.expose().to_owned()),
        Some("sqlite::memory:".to_owned())
    );
    let err = ConfigLoader::new()
        .env([("OS_DEFAULT__REPORT_INTERVAL".to_owned(), "x".to_owned())])
        .load()
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "environment variable OS_DEFAULT__REPORT_INTERVAL: [DEFAULT] report_interval"
        ),
        "{err}"
    );
}

#[test]
fn topics_can_be_added_for_upgrade_levels_and_managers() {
    let text = "[DEFAULT]\nbilling_manager = b\n[upgrade_levels]\nbilling = 1.2\n";
    // An unknown topic in [upgrade_levels] is reported; `<topic>_manager` only when it looks like a
    // misspelling, as other programs' `*_manager` options share [DEFAULT].
    let warnings = load(text).unwrap().warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].key, "billing");
    let warnings = load("[DEFAULT]\nschedular_manager = m\n").unwrap().warnings;
    assert_eq!(warnings[0].suggestion.as_deref(), Some("scheduler_manager"));
    let loaded = ConfigLoader::new()
        .text("x.conf", text)
        .topic("billing")
        .load()
        .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.manager("billing"), Some("b"));
}

#[test]
fn url_options_win_over_config_options() {
    let c = load(
        "[DEFAULT]\ntransport_url = rabbit://h/?rabbit_qos_prefetch_count=8\ncontrol_exchange = nova\n\
         [oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 64\n",
    )
    .unwrap()
    .config;
    let url = c.effective_transport_url();
    assert_eq!(url.option("rabbit_qos_prefetch_count"), Some("8"));
    assert_eq!(url.option("control_exchange"), Some("nova"));
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact_password("mysql+pymysql://nova:secret@db:3306/nova?charset=utf8"),
        "mysql+pymysql://nova:***@db:3306/nova?charset=utf8"
    );
    assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_password("sqlite::memory:"), "sqlite::memory:");
    assert_eq!(
        redact_password("sqlite:////var/lib/nova.sqlite"),
        "sqlite:////var/lib/nova.sqlite"
    );
    assert_eq!(
        DatabaseUrl::new("postgresql://a:b@c/d").to_string(),
        "postgresql://a:***@c/d"
    );
}

#[test]
fn upgrade_levels_parse() {
    assert_eq!(UpgradeLevel::parse("auto"), Some(UpgradeLevel::Auto));
    assert_eq!(UpgradeLevel::parse("AUTO"), Some(UpgradeLevel::Auto));
    assert_eq!(
        UpgradeLevel::parse("4.22"),
        Some(UpgradeLevel::Version(Version::new(4, 22)))
    );
    assert_eq!(
        UpgradeLevel::parse("Zed"),
        Some(UpgradeLevel::Alias("zed".into()))
    );
    assert_eq!(
        UpgradeLevel::parse("2024.2"),
        Some(UpgradeLevel::Alias("2024.2".into()))
    );
    assert_eq!(UpgradeLevel::parse("4.x!"), None);
    assert_eq!(UpgradeLevel::parse(""), None);
}

#[test]
fn suggestions_are_close_names_only() {
    assert_eq!(nearest("hots", &["host", "report_interval"]), Some("host"));
    assert_eq!(nearest("use_syslog", DEFAULT_OPTIONS), None);
    assert_eq!(closest("use_syslog", &["host", "debug"]), Some("debug"));
}

#[test]
fn logging_options_read_as_oslo_log_reads_them() {
    let c = load(
        "[DEFAULT]\nlog_file = sched.log\nuse_json = True\nuse_stderr = yes\nlog_color = false\n",
    )
    .unwrap()
    .config;
    assert_eq!(c.logging.log_path("p"), Some("sched.log".into()));
    assert!(c.logging.use_json && c.logging.use_stderr && !c.logging.debug);
    assert_eq!(c.logging.log_color, Some(false));
    // An empty path is unset; a flag that is not a boolean is an error naming the key.
    let c = load("[DEFAULT]\nlog_file =\n").unwrap().config;
    assert_eq!(c.logging.log_path("p"), None);
    let error = load("[DEFAULT]\nuse_json = maybe\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("use_json") && error.contains("maybe"),
        "{error}"
    );
}

#[test]
fn metrics_listen_is_an_address_and_port_or_off() {
    let c = load("[metrics]\nlisten = 127.0.0.1:9464\n").unwrap().config;
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    let c = load("[metrics]\nlisten = [::1]:0\n").unwrap().config;
    assert_eq!(c.metrics.listen, Some("[::1]:0".parse().unwrap()));
    assert_eq!(
        load("[metrics]\nlisten =\n").unwrap().config.metrics.listen,
        None
    );
    assert_eq!(load("").unwrap().config.metrics.listen, None);
    let error = load("[metrics]\nlisten = localhost\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("listen") && error.contains("localhost"),
        "{error}"
    );
    let loaded = load("[metrics]\nlistn = 127.0.0.1:1\n").unwrap();
    assert_eq!(loaded.warnings[0].suggestion.as_deref(), Some("listen"));
}

#[test]
fn rpc_ping_enabled_is_oslo_s_boolean() {
    assert!(!load("").unwrap().config.rpc_ping_enabled);
    assert!(
        load("[DEFAULT]\nrpc_ping_enabled = true\n")
            .unwrap()
            .config
            .rpc_ping_enabled
    );
    assert!(load("[DEFAULT]\nrpc_ping_enabled = nope\n").is_err());
}

#[test]
fn the_otlp_endpoint_is_read_from_its_own_section() {
    let c = load("[tracing]\notlp_endpoint = http://collector:4318\n")
        .unwrap()
        .config;
    assert_eq!(
        c.logging.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(
        load("[tracing]\notlp_endpoint =\n")
            .unwrap()
            .config
            .logging
            .otlp_endpoint,
        None
    );
    let loaded = load("[tracing]\notlp_endpont = x\n").unwrap();
    assert_eq!(
        loaded.warnings[0].suggestion.as_deref(),
        Some("otlp_endpoint")
    );
}
