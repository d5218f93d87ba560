//! Every message of the contract survives the trip a real call makes: to a `Value`, through
//! the wire codec, and back; requests also as the positional arguments a peer sends.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use rwc_api::module::{
    AbiKind, ExportDescription, ExportSignature, ExternKind, ImportDescription, ModuleInfo,
    ParamDescription,
};
use rwc_api::registry::RegistryEntry;
use rwc_api::{
    ConnectionUsage, EffectiveLimits, InstanceOptions, Limits, NodeInfo, ObjectRef, PrincipalInfo,
    Request, Usage, instance, module, output, registry, root, upload,
};
use rwc_protocol::{DecodeLimits, Ref, Value, WireRef, codec, from_value, to_value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

/// `msg` → value → bytes → value → `msg`.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(msg: &T) {
    let value = to_value(msg).unwrap();
    assert_eq!(&from_value::<T>(value.clone()).unwrap(), msg, "{value:?}");
    let bytes = codec::encode_value(&value).unwrap();
    let decoded = codec::decode_value(&bytes, DecodeLimits::DEFAULT).unwrap();
    assert_eq!(decoded, value);
    assert_eq!(&from_value::<T>(decoded).unwrap(), msg);
}

/// A request as a message, and as the arguments of a call (through the codec too).
fn request<R: Request + PartialEq + Debug>(req: &R) {
    round_trip(req);
    let args = req.to_args().unwrap();
    let bytes = codec::encode_value(&Value::List(args)).unwrap();
    let Value::List(args) = codec::decode_value(&bytes, DecodeLimits::DEFAULT).unwrap() else {
        panic!("arguments decode as a list")
    };
    assert_eq!(&R::from_args(args).unwrap(), req);
}

/// A reply of `R`, through the codec and [`Request::reply`].
fn reply<R: Request>(reply: &R::Reply)
where
    R::Reply: PartialEq + Debug,
{
    round_trip(reply);
    let value = to_value(reply).unwrap();
    assert_eq!(&R::reply(value).unwrap(), reply);
}

fn object(id: u64) -> ObjectRef {
    ObjectRef(Ref::Wire(WireRef::Sender(id)))
}

fn options() -> InstanceOptions {
    InstanceOptions {
        memory: Some(16 << 20),
        fuel: Some(1_000_000),
        call_timeout: Some(Duration::from_millis(1500)),
        max_output: Some(4096),
        env: BTreeMap::from([("K".to_owned(), "V".to_owned())]),
        args: vec!["prog".to_owned(), "-v".to_owned()],
        capabilities: vec!["sys".to_owned()],
        objects: BTreeMap::from([("cb".to_owned(), object(7))]),
        output: Some(object(8)),
    }
}

fn export(name: &str, abi: AbiKind) -> ExportDescription {
    match abi {
        AbiKind::Rich => ExportDescription::rich(
            name,
            Some(&ExportSignature {
                name: name.to_owned(),
                params: vec![ParamDescription {
                    name: Some("data".to_owned()),
                    ty: "Vec<u8>".to_owned(),
                }],
                result: Some("u64".to_owned()),
                doc: Some("How many bytes.".to_owned()),
            }),
        ),
        AbiKind::Numeric => ExportDescription::numeric(name, &["i32"], &["i32"]),
    }
}

fn node_info() -> NodeInfo {
    NodeInfo {
        version: "0.1.0".to_owned(),
        wasmtime_version: "48.0.0".to_owned(),
        uptime_secs: 12.5,
        modules_cached: 3,
        live_instances: 2,
        compiles: 4,
        disk_cache_hits: 1,
        memory_cache_hits: 9,
        calls: 100,
        calls_refused: 2,
        uploads: 4,
        connections: 7,
        grants: vec!["sys".to_owned(), "log".to_owned()],
        limits: Limits::default(),
        usage: Usage {
            connections: 3,
            calls_in_flight: 5,
            compiles_queued: 1,
            cache_disk_bytes: 1 << 20,
            this_connection: ConnectionUsage {
                calls_in_flight: 1,
                netrefs: 2,
                ..ConnectionUsage::default()
            },
            ..Usage::default()
        },
        principal: Some(PrincipalInfo {
            name: "ops".to_owned(),
            grants: vec!["run".to_owned(), "sys".to_owned()],
            limits: EffectiveLimits {
                memory_bytes: 1 << 20,
                fuel: Some(1000),
                call_timeout_ms: 500,
                max_instances: 2,
                max_concurrent_calls: 4,
                max_module_bytes: 1 << 16,
            },
        }),
    }
}

#[test]
fn root_requests_and_replies() {
    request(&root::Upload {
        bytes: ByteBuf::from(b"(module)".to_vec()),
    });
    reply::<root::Upload>(&object(1));
    request(&root::UploadStream { total_len: 1 << 30 });
    request(&root::ModuleByHash {
        hash: "ab".repeat(32),
    });
    reply::<root::ModuleByHash>(&Some(object(2)));
    reply::<root::ModuleByHash>(&None);
    request(&root::Instantiate {
        module: object(3),
        options: options(),
    });
    request(&root::Instantiate {
        module: object(3),
        options: InstanceOptions::default(),
    });
    request(&root::Run {
        module: object(3),
        export: "sq".to_owned(),
        args: vec![Value::I64(12), Value::from("x")],
        options: options(),
    });
    reply::<root::Run>(&Value::I64(144));
    request(&root::Info {});
    reply::<root::Info>(&node_info());
    request(&root::Capability {
        name: "sys".to_owned(),
    });
    reply::<root::Capability>(&Some(object(4)));
}

#[test]
fn module_requests_and_replies() {
    request(&module::Hash {});
    reply::<module::Hash>(&"ab".repeat(32));
    request(&module::Size {});
    reply::<module::Size>(&1234);
    let exports = vec![
        export("word_count", AbiKind::Rich),
        export("sq", AbiKind::Numeric),
    ];
    request(&module::Exports {});
    reply::<module::Exports>(&exports);
    let imports = vec![ImportDescription {
        module: "wasi_snapshot_preview1".to_owned(),
        name: "fd_write".to_owned(),
        kind: ExternKind::Func,
        signature: "(func (param i32 i32 i32 i32) (result i32))".to_owned(),
    }];
    request(&module::Imports {});
    reply::<module::Imports>(&imports);
    request(&module::Info {});
    reply::<module::Info>(&ModuleInfo {
        hash: "cd".repeat(32),
        size: 99,
        exports,
        imports,
    });
}

#[test]
fn instance_requests_and_replies() {
    request(&instance::Exports {});
    reply::<instance::Exports>(&vec![export("add", AbiKind::Numeric)]);
    request(&instance::ReadMemory {
        offset: 100,
        len: 3,
    });
    reply::<instance::ReadMemory>(&ByteBuf::from(vec![1, 2, 3]));
    request(&instance::WriteMemory {
        offset: 100,
        bytes: ByteBuf::from(vec![1, 2, 3]),
    });
    reply::<instance::WriteMemory>(&());
    request(&instance::Fuel {});
    reply::<instance::Fuel>(&Some(10));
    reply::<instance::Fuel>(&None);
    request(&instance::Info {});
    reply::<instance::Info>(&instance::InstanceInfo {
        id: 4,
        module: "ef".repeat(32),
    });
    request(&instance::Close {});
}

#[test]
fn upload_output_and_registry_messages() {
    request(&upload::Write {
        chunk: ByteBuf::from(vec![0; 1024]),
    });
    reply::<upload::Write>(&1024);
    request(&upload::Finish {});
    reply::<upload::Finish>(&object(5));
    request(&upload::Received {});
    request(&output::Write {
        stream: output::STDOUT.to_owned(),
        bytes: ByteBuf::from(b"hello\n".to_vec()),
    });
    request(&registry::Register {
        addr: "10.0.0.1:18870".to_owned(),
        tags: vec!["gpu".to_owned()],
        ttl_secs: 30,
    });
    request(&registry::Unregister {
        addr: "10.0.0.1:18870".to_owned(),
    });
    reply::<registry::Unregister>(&true);
    let entries = vec![RegistryEntry {
        addr: "10.0.0.1:18870".to_owned(),
        tags: vec!["gpu".to_owned()],
        ttl_secs: 30,
        expires_in_secs: 29.5,
    }];
    request(&registry::List {});
    reply::<registry::List>(&entries);
    request(&registry::Lookup {
        tag: "gpu".to_owned(),
    });
    reply::<registry::Lookup>(&entries);
}

#[test]
fn instance_options_take_what_a_person_types() {
    round_trip(&options());
    round_trip(&InstanceOptions::default());
    let typed = |pairs: &[(&str, Value)]| -> Result<InstanceOptions, rwc_protocol::Error> {
        from_value(Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        ))
    };
    let o = typed(&[
        ("call_timeout_ms", Value::U64(500)),
        ("memory", Value::U64(1 << 20)),
    ])
    .unwrap();
    assert_eq!(o.call_timeout, Some(Duration::from_millis(500)));
    assert_eq!(o.memory, Some(1 << 20));
    // The old names still work.
    let o = typed(&[
        ("timeout_ms", Value::U64(250)),
        ("grant", Value::Map(vec![])),
    ])
    .unwrap();
    assert_eq!(o.call_timeout, Some(Duration::from_millis(250)));
    // A typo is named, with the keys there are.
    let err = typed(&[("memroy", Value::U64(1))]).unwrap_err();
    for word in [
        "memroy",
        "memory",
        "fuel",
        "call_timeout_ms",
        "objects",
        "output",
    ] {
        assert!(err.message().contains(word), "{word}: {err}");
    }
    // Only what was set goes on the wire.
    let sparse = to_value(&InstanceOptions {
        fuel: Some(5),
        ..InstanceOptions::default()
    })
    .unwrap();
    assert_eq!(
        sparse,
        Value::Map(vec![(Value::from("fuel"), Value::U64(5))])
    );
}

#[test]
fn arguments_left_off_take_their_defaults() {
    // `instantiate(module)` and `instantiate(module, ())`: default options.
    for args in [
        vec![Value::Ref(object(1).0)],
        vec![Value::Ref(object(1).0), Value::Unit],
    ] {
        let r = root::Instantiate::from_args(args).unwrap();
        assert_eq!(r.options, InstanceOptions::default());
    }
    // `run(module, export)`, `run(module, export, ())`, and a lone argument.
    let run = |more: Vec<Value>| {
        let mut args = vec![Value::Ref(object(1).0), Value::from("sq")];
        args.extend(more);
        root::Run::from_args(args).unwrap().args
    };
    assert!(run(vec![]).is_empty());
    assert!(run(vec![Value::Unit]).is_empty());
    assert_eq!(run(vec![Value::I64(3)]), [Value::I64(3)]);
    assert_eq!(run(vec![Value::List(vec![Value::I64(3)])]), [Value::I64(3)]);
    // Bad arguments say which method they were for.
    let err = root::Instantiate::from_args(vec![]).unwrap_err();
    assert!(err.message().contains("`instantiate`"), "{err}");
    let err = root::Instantiate::from_args(vec![
        Value::Ref(object(1).0),
        Value::Map(vec![(Value::from("memroy"), Value::U64(1))]),
    ])
    .unwrap_err();
    assert!(err.message().contains("memroy"), "{err}");
}

#[test]
fn the_limits_that_bound_peers_are_config_keys_and_usage_is_optional_on_the_wire() {
    let json = serde_json::to_value(Limits::default()).unwrap();
    for key in [
        "max_connections",
        "max_connections_per_address",
        "max_connections_per_principal",
        "max_calls_in_flight",
        "max_request_bytes_in_flight",
        "max_concurrent_compiles",
        "compile_timeout_ms",
        "cache_max_bytes",
        "max_upload_bytes_in_flight",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {json}");
    }
    assert_eq!(json["max_calls_in_flight"], 1024, "far below 100 000");
    // A node from before `usage` existed: its info still decodes, with nothing in use.
    let Value::Map(mut fields) = to_value(&node_info()).unwrap() else {
        panic!("info is a map");
    };
    fields.retain(|(k, _)| k.as_str() != Some("usage"));
    let older: NodeInfo = from_value(Value::Map(fields)).unwrap();
    assert_eq!(older.usage, Usage::default());
}

#[test]
fn node_info_keeps_the_keys_rwc_info_prints() {
    let json = serde_json::to_value(node_info()).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "version",
        "wasmtime_version",
        "uptime_secs",
        "modules_cached",
        "live_instances",
        "compiles",
        "disk_cache_hits",
        "memory_cache_hits",
        "calls",
        "calls_refused",
        "uploads",
        "connections",
        "grants",
        "limits",
        "usage",
        "principal",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(json["limits"]["call_timeout_ms"], 30_000);
    assert_eq!(json["limits"]["max_module_bytes"], 64 << 20);
    assert_eq!(json["principal"]["name"], "ops");
    assert_eq!(json["principal"]["limits"]["max_instances"], 2);
    assert_eq!(
        serde_json::to_value(export("f", AbiKind::Rich)).unwrap()["abi"],
        "rich"
    );
}

#[test]
fn limits_from_a_newer_node_decode_and_missing_keys_default() {
    // A newer node reports a limit this client does not know: `info()` still decodes.
    let l: Limits = from_value(Value::Map(vec![
        (Value::from("call_timeout_ms"), Value::U64(5)),
        (Value::from("a_limit_from_the_future"), Value::U64(1)),
    ]))
    .unwrap();
    assert_eq!(l.call_timeout_ms, 5);
    assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
    round_trip(&Limits::default());
}

#[test]
fn registry_entries_are_checked() {
    let entry = |addr: &str, tags: &[&str], ttl_secs: u64| registry::Register {
        addr: addr.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ttl_secs,
    };
    assert!(entry("10.0.0.1:1", &["gpu"], 30).check().is_ok());
    assert!(entry("", &[], 30).check().is_err());
    assert!(
        entry(&"x".repeat(registry::MAX_ADDR_LEN + 1), &[], 30)
            .check()
            .is_err()
    );
    assert!(entry("a:1", &[""], 30).check().is_err());
    assert!(entry("a:1", &[], 0).check().is_err());
    assert!(
        entry("a:1", &[], registry::MAX_TTL_SECS + 1)
            .check()
            .is_err()
    );
    let err = entry("a:1", &[], 0).check().unwrap_err();
    assert_eq!(err.kind(), rwc_protocol::ErrorKind::BadArgument);
}

#[test]
fn method_tables_name_every_request() {
    let names = |t: &[(&'static str, &'static str)]| t.iter().map(|(n, _)| *n).collect::<Vec<_>>();
    assert_eq!(
        names(root::METHODS),
        [
            "upload",
            "upload_stream",
            "module",
            "instantiate",
            "run",
            "run_program",
            "info",
            "capability"
        ]
    );
    assert_eq!(
        names(instance::METHODS),
        [
            "rwc.exports",
            "rwc.read_memory",
            "rwc.write_memory",
            "rwc.fuel",
            "rwc.info",
            "rwc.close"
        ]
    );
    assert_eq!(
        names(registry::METHODS),
        ["register", "unregister", "list", "lookup"]
    );
    assert_eq!(
        rwc_api::capability::sys::report_keys().collect::<Vec<_>>(),
        [
            "hostname",
            "os",
            "arch",
            "cpu_count",
            "uptime_secs",
            "load_average",
            "memory",
            "disk"
        ]
    );
}

#[test]
fn exec_and_program_messages_round_trip() {
    use rwc_api::capability::exec::{self, CommandInfo, ExecOutput, ParamInfo};
    request(&exec::Run {
        name: "df".to_owned(),
        params: BTreeMap::from([("path".to_owned(), "/".to_owned())]),
    });
    request(&exec::List {});
    // A guest may leave the placeholders out (unit) when a command has none.
    let bare: exec::Run = from_value(Value::Map(vec![
        (Value::from("name"), Value::from("uptime")),
        (Value::from("params"), Value::Unit),
    ]))
    .unwrap();
    assert!(bare.params.is_empty());
    round_trip(&ExecOutput {
        status: None,
        signal: Some(9),
        stdout: ByteBuf::from(vec![0xff, 0]),
        stderr: ByteBuf::from(b"err".to_vec()),
        timed_out: true,
        truncated: false,
    });
    round_trip(&CommandInfo {
        name: "df".to_owned(),
        program: "/bin/df".to_owned(),
        args: vec!["-P".to_owned(), "{path}".to_owned()],
        params: BTreeMap::from([
            ("path".to_owned(), ParamInfo::OneOf(vec!["/".to_owned()])),
            ("unit".to_owned(), ParamInfo::Pattern("^[a-z]+$".to_owned())),
        ]),
        timeout_ms: 5000,
        max_output_bytes: 1 << 20,
    });
    round_trip(&root::ProgramExit { status: 33 });
}

#[test]
fn nats_messages() {
    use rwc_api::nats::{self, JobMeta, NodeEntry, Task, TaskResult};
    fn through<T: Serialize + DeserializeOwned + PartialEq + Debug>(msg: &T) {
        round_trip(msg);
        assert_eq!(
            &nats::decode::<T>(&nats::encode(msg).unwrap()).unwrap(),
            msg
        );
    }
    through(&NodeEntry {
        id: "n1".into(),
        address: "127.0.0.1:18870".into(),
        tags: vec!["cpu".into()],
        capacity: 8,
        load: 2,
        version: "0.1.0".into(),
    });
    through(&JobMeta {
        name: "squares".into(),
        tag: "cpu".into(),
        module: "ab".repeat(32),
        export: "sq".into(),
        total: 10,
        batch: 4,
        inputs_digest: "cd".repeat(32),
        created_ms: 1_700_000_000_000,
    });
    through(&Task {
        job: "squares".into(),
        first: 4,
        module: "ab".repeat(32),
        export: "sq".into(),
        inputs: vec![
            vec![Value::Bytes(vec![0, 255].into())],
            vec![
                Value::F64(0.5),
                Value::Map(vec![(Value::I64(1), Value::Unit)]),
            ],
        ],
        options: InstanceOptions {
            fuel: Some(1000),
            call_timeout: Some(Duration::from_millis(1500)),
            env: BTreeMap::from([("K".to_owned(), "v".to_owned())]),
            ..InstanceOptions::default()
        },
    });
    through(&TaskResult {
        job: "squares".into(),
        index: 7,
        node: "127.0.0.1:1".into(),
        delivery: 2,
        outcome: Ok(Value::U64(49)),
    });
    through(&TaskResult {
        job: "squares".into(),
        index: 8,
        node: String::new(),
        delivery: 4,
        outcome: Err(rwc_protocol::Error::new(
            rwc_protocol::ErrorKind::Trapped,
            "unreachable",
        )),
    });
    assert!(nats::decode::<Task>(b"\xff\xff garbage").is_err());
}
