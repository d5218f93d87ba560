//! `rwc shell NODE`: an interactive session with a node, in the spirit of RPyC's
//! `interact`. A person loads modules, makes instances, calls exports with JSON arguments
//! and keeps what comes back (values or netrefs) in `$variables`, which can be passed to
//! later calls. Guest output shows as it is written.
//!
//! Commands are read from stdin line by line, so a script piped in works the same; the
//! prompt is printed only when stdin is a terminal. A failed command prints one line and
//! the session goes on; a script's exit code is that of its first failed command.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::json::{from_json, to_json};
use rwc_client::api::root::Instantiate;
use rwc_client::api::{instance, module};
use rwc_client::{
    Client, ConnectOptions, Error, ErrorKind, InstanceOptions, NetRef, ObjectRef, OutputHandler,
    Value, from_value, request,
};
use rwc_protocol::Ref;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};

const HELP: &str = "\
commands:
  load FILE                      upload a module (.wasm or .wat)        -> $mN
  new $m [OPTIONS]               instantiate $m; OPTIONS is a JSON map:  -> $iN
                                 {\"fuel\": 1000000, \"memory\": 16777216, \"call_timeout_ms\": 5000,
                                  \"env\": {\"K\": \"V\"}, \"args\": [\"prog\"], \"capabilities\": [\"sys\"],
                                  \"objects\": {\"name\": \"$x\"}}
  call $x METHOD [ARG…]          call an export of an instance (or a method of any netref);
                                 each ARG is JSON, a bare word (a string) or a $variable
  set $name = COMMAND | VALUE    keep what load/new/call returns (or a JSON value) in $name
  exports $x                     the exports of an instance or module
  methods $x                     the methods a netref answers
  vars                           the variables ($root is the node, $_ the last result)
  drop $name                     forget a variable (the node frees what only it held)
  info                           the node's info
  help                           this text
  quit                           leave (so does end of input)";

/// Runs the session; returns the exit code.
pub async fn run(node: &str, options: &ConnectOptions, verbose: bool) -> Result<ExitCode, Error> {
    let client = Client::connect_with(node, options).await?;
    let interactive = std::io::stdin().is_terminal();
    let mut shell = Shell::new(client);
    if interactive {
        println!(
            "connected to {node} ({}); type help for the commands",
            shell.client.connection().peer().agent
        );
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut first_error: Option<ErrorKind> = None;
    loop {
        if interactive {
            print!("rwc> ");
            let _ = std::io::stdout().flush();
        }
        let line = if interactive {
            tokio::select! {
                line = lines.next_line() => line,
                _ = tokio::signal::ctrl_c() => {
                    println!();
                    continue;
                }
            }
        } else {
            lines.next_line().await
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                eprintln!("rwc: cannot read stdin: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if matches!(line, "quit" | "exit") {
            break;
        }
        let outcome = if interactive {
            // Ctrl-C cancels the command (and its call on the node), not the session.
            tokio::select! {
                r = shell.execute(line) => r,
                _ = tokio::signal::ctrl_c() => Err(Error::new(ErrorKind::Cancelled, "interrupted")),
            }
        } else {
            shell.execute(line).await
        };
        if let Err(e) = outcome {
            if verbose {
                eprintln!("error: {e}");
            } else {
                eprintln!("error: {}", crate::one_line(&e));
            }
            first_error.get_or_insert(e.kind());
            if shell.client.connection().is_closed() {
                eprintln!("rwc: the connection to {node} is closed; leaving");
                break;
            }
        }
    }
    shell.client.close();
    Ok(match first_error {
        Some(kind) if !interactive => ExitCode::from(crate::exit_code(kind)),
        _ => ExitCode::SUCCESS,
    })
}

/// What a variable holds, for `vars` and for choosing how to list exports.
#[derive(Debug, Clone)]
enum Kind {
    Module(String),
    Instance(String),
    Node,
    Value,
}

#[derive(Debug, Clone)]
struct Var {
    value: Value,
    kind: Kind,
}

struct Shell {
    client: Client,
    vars: BTreeMap<String, Var>,
    modules: usize,
    instances: usize,
}

impl Shell {
    fn new(client: Client) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert(
            "root".to_owned(),
            Var {
                value: Value::from(client.root().clone()),
                kind: Kind::Node,
            },
        );
        Shell {
            client,
            vars,
            modules: 0,
            instances: 0,
        }
    }

    async fn execute(&mut self, line: &str) -> Result<(), Error> {
        let (word, rest) = split_word(line);
        match word {
            "help" | "?" => {
                println!("{HELP}");
                Ok(())
            }
            "set" => {
                let (name, rest) = split_word(rest);
                let name = var_name(name)?;
                let rest = rest.trim_start().strip_prefix('=').ok_or_else(|| {
                    Error::bad_argument("usage: set $name = call|load|new … or a JSON value")
                })?;
                let var = self.evaluate(rest.trim()).await?;
                println!("${name} = {}", describe(&var));
                self.vars.insert(name.to_owned(), var);
                Ok(())
            }
            "load" | "new" | "call" => {
                let var = self.evaluate(line).await?;
                let name = match (&var.kind, word) {
                    (Kind::Module(_), "load") => {
                        self.modules += 1;
                        format!("m{}", self.modules)
                    }
                    (Kind::Instance(_), "new") => {
                        self.instances += 1;
                        format!("i{}", self.instances)
                    }
                    _ => "_".to_owned(),
                };
                if name == "_" {
                    match &var.value {
                        Value::Ref(_) => println!("netref, in $_ (keep it: set $name = $_)"),
                        v => println!("{}", show(v)),
                    }
                } else {
                    println!("${name} = {}", describe(&var));
                }
                self.vars.insert(name, var);
                Ok(())
            }
            "exports" => {
                let var = self.var(single_var(rest)?)?.clone();
                let target = netref(&var.value)?;
                let list = match var.kind {
                    Kind::Module(_) => request(&target, &module::Exports {}).await?,
                    _ => request(&target, &instance::Exports {}).await?,
                };
                for e in list {
                    println!("  {:<20} {:<8} {}", e.name, e.abi, e.signature);
                }
                Ok(())
            }
            "methods" => {
                let var = self.var(single_var(rest)?)?;
                for m in netref(&var.value)?.methods().await? {
                    println!("  {:<20} {}", m.name, m.doc);
                }
                Ok(())
            }
            "vars" => {
                for (name, var) in &self.vars {
                    println!("  ${name:<8} {}", describe(var));
                }
                Ok(())
            }
            "drop" => {
                let name = single_var(rest)?;
                if name == "root" {
                    return Err(Error::bad_argument(
                        "$root is the node; it cannot be dropped",
                    ));
                }
                self.vars
                    .remove(name)
                    .map(|_| ())
                    .ok_or_else(|| no_such_var(name))
            }
            "info" => {
                let info = self.client.info().await?;
                println!("{}", crate::commands::pretty(&info)?);
                Ok(())
            }
            other => Err(Error::bad_argument(format!(
                "unknown command {other:?}; type help for the commands"
            ))),
        }
    }

    /// `load …`, `new …`, `call …`, or a value (JSON or `$var`).
    async fn evaluate(&self, text: &str) -> Result<Var, Error> {
        let (word, rest) = split_word(text);
        match word {
            "load" => {
                let path = rest.trim();
                if path.is_empty() {
                    return Err(Error::bad_argument("usage: load FILE"));
                }
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::bad_argument(format!("cannot read module {path}: {e}")))?;
                let module = self.client.upload_with_progress(&bytes, |_, _| {}).await?;
                Ok(Var {
                    value: Value::from(module.netref().clone()),
                    kind: Kind::Module(module.hash().to_owned()),
                })
            }
            "new" => {
                let (module_var, options) = split_word(rest);
                let module = self.var(var_name(module_var)?)?;
                let Kind::Module(hash) = &module.kind else {
                    return Err(Error::bad_argument(format!(
                        "{module_var} is not a module; make one with load FILE"
                    )));
                };
                let mut options: InstanceOptions =
                    match parse_values(options, &self.vars)?.as_slice() {
                        [] | [Value::Unit] => InstanceOptions::default(),
                        [one] => from_value(one.clone()).map_err(|e| {
                            Error::bad_argument(format!("bad instance options: {}", e.message()))
                        })?,
                        _ => {
                            return Err(Error::bad_argument(
                                "usage: new $m [OPTIONS], OPTIONS one JSON map",
                            ));
                        }
                    };
                options
                    .output
                    .get_or_insert_with(|| OutputHandler::terminal().into());
                let req = Instantiate {
                    module: ObjectRef::from(netref(&module.value)?),
                    options,
                };
                let instance = request(self.client.root(), &req).await?;
                Ok(Var {
                    value: instance.into(),
                    kind: Kind::Instance(hash.clone()),
                })
            }
            "call" => {
                let (target, rest) = split_word(rest);
                let (method, args) = split_word(rest);
                if method.is_empty() {
                    return Err(Error::bad_argument("usage: call $x METHOD [ARG…]"));
                }
                let target = netref(&self.var(var_name(target)?)?.value)?;
                let args = parse_values(args, &self.vars)?;
                let value = target.call_value(method, args).await?;
                Ok(Var {
                    kind: Kind::Value,
                    value,
                })
            }
            _ => match parse_values(text, &self.vars)?.as_slice() {
                [one] => Ok(Var {
                    value: one.clone(),
                    kind: match one {
                        Value::Ref(_) => self.kind_of(text.trim()),
                        _ => Kind::Value,
                    },
                }),
                _ => Err(Error::bad_argument(
                    "set takes one command (load, new, call) or one value",
                )),
            },
        }
    }

    /// The kind of `$name` when a variable is copied (`set $a = $m1`).
    fn kind_of(&self, text: &str) -> Kind {
        text.strip_prefix('$')
            .and_then(|n| self.vars.get(n))
            .map_or(Kind::Value, |v| v.kind.clone())
    }

    fn var(&self, name: &str) -> Result<&Var, Error> {
        self.vars.get(name).ok_or_else(|| no_such_var(name))
    }
}

fn no_such_var(name: &str) -> Error {
    Error::bad_argument(format!("no variable ${name}; vars lists them"))
}

/// `$name` → `name`.
fn var_name(word: &str) -> Result<&str, Error> {
    match word.strip_prefix('$') {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_') => Ok(n),
        _ => Err(Error::bad_argument(format!(
            "expected a $variable, got {word:?}"
        ))),
    }
}

fn single_var(rest: &str) -> Result<&str, Error> {
    let (word, more) = split_word(rest);
    if !more.trim().is_empty() {
        return Err(Error::bad_argument("expected one $variable"));
    }
    var_name(word)
}

/// The first whitespace-separated word, and the rest.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn netref(v: &Value) -> Result<NetRef, Error> {
    match v {
        Value::Ref(Ref::Object(n)) => Ok(n.clone()),
        other => Err(Error::bad_argument(format!(
            "a {} is not a netref; only modules, instances and returned objects can be called",
            other.type_name()
        ))),
    }
}

/// Arguments: JSON values, bare words (strings) and `$variables`, separated by spaces.
/// Inside JSON, a string that is exactly `"$name"` of a variable is that variable.
fn parse_values(text: &str, vars: &BTreeMap<String, Var>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('$') {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            let var = vars.get(name).ok_or_else(|| no_such_var(name))?;
            out.push(var.value.clone());
            rest = after[end..].trim_start();
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Json>();
        if let Some(Ok(j)) = stream.next() {
            let used = stream.byte_offset();
            let after = &rest[used..];
            if after.is_empty() || after.starts_with(char::is_whitespace) {
                out.push(resolve(&j, vars)?);
                rest = after.trim_start();
                continue;
            }
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(Value::String(rest[..end].to_owned()));
        rest = rest[end..].trim_start();
    }
    Ok(out)
}

/// JSON → value, with `"$name"` strings replaced by variables.
fn resolve(j: &Json, vars: &BTreeMap<String, Var>) -> Result<Value, Error> {
    match j {
        Json::String(s) => match s.strip_prefix('$').and_then(|n| vars.get(n)) {
            Some(var) => Ok(var.value.clone()),
            None => Ok(Value::String(s.clone())),
        },
        Json::Array(items) => Ok(Value::List(
            items
                .iter()
                .map(|i| resolve(i, vars))
                .collect::<Result<_, _>>()?,
        )),
        Json::Object(o) if !(o.len() == 1 && o.contains_key("$bytes")) => Ok(Value::Map(
            o.iter()
                .map(|(k, v)| Ok((Value::String(k.clone()), resolve(v, vars)?)))
                .collect::<Result<_, Error>>()?,
        )),
        other => from_json(other),
    }
}

fn describe(var: &Var) -> String {
    match &var.kind {
        Kind::Module(hash) => format!("module {hash}"),
        Kind::Instance(hash) => format!("instance of module {}", short(hash)),
        Kind::Node => "the node (root)".to_owned(),
        Kind::Value => show(&var.value),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// A value as one line: JSON, or `netref` for an object.
fn show(v: &Value) -> String {
    match v {
        Value::Ref(_) => "netref".to_owned(),
        other => to_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_mix_json_words_and_variables() {
        let mut vars = BTreeMap::new();
        vars.insert(
            "x".to_owned(),
            Var {
                value: Value::U64(7),
                kind: Kind::Value,
            },
        );
        let v = parse_values(
            r#"1 "two words" bare $x [1, "$x"] {"a": "$x"} true1"#,
            &vars,
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                Value::U64(1),
                Value::from("two words"),
                Value::from("bare"),
                Value::U64(7),
                Value::List(vec![Value::U64(1), Value::U64(7)]),
                Value::Map(vec![(Value::from("a"), Value::U64(7))]),
                Value::from("true1"),
            ]
        );
        assert!(parse_values("$nope", &vars).is_err());
        assert_eq!(split_word("  call $i add 1"), ("call", " $i add 1"));
        assert!(var_name("x").is_err());
        assert_eq!(var_name("$i1").unwrap(), "i1");
    }
}
