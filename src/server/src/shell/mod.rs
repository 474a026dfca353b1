//! `aerie shell`: the operator shell. Interactive with history and completion when standard input
//! is a terminal; one command with `-e`; otherwise commands are read line by line from standard
//! input (so `aerie shell < script` works). Output goes to standard output, errors to standard
//! error, and the exit status says whether every command succeeded.

mod admin;
mod balance;
mod commands;
mod data;
mod drain;
mod drain_plan;
mod escape;
mod recover;
mod remote;
mod report;
pub mod rolling;
mod stat;

use aerie_client::{Client, ClientOptions, Table};
use aerie_common::NodeAddr;
use anyhow::{Context, Result};
use clap::{Args, Parser};
use commands::{DrainArgs, Line, ShellCommand, COMMAND_NAMES};
use drain_plan::Drain;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Helper, Highlighter, Hinter, Validator};
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ShellArgs {
    /// Meta servers, comma separated.
    #[arg(long, default_value = "127.0.0.1:34601")]
    pub meta: String,
    /// Run one command and exit.
    #[arg(short = 'e', long = "exec", value_name = "CMD")]
    pub exec: Option<String>,
    /// Timeout of one request, retries included, in milliseconds.
    #[arg(long = "timeout_ms", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

pub struct Shell {
    client: Client,
    runtime: tokio::runtime::Runtime,
    current_table: Option<Table>,
}

enum Outcome {
    Continue(bool),
    Exit,
}

impl Shell {
    fn block<T>(&self, fut: impl Future<Output = aerie_common::WireResult<T>>) -> Result<T, String> {
        self.runtime.block_on(fut).map_err(|e| e.to_string())
    }

    fn run_command(&mut self, command: ShellCommand) -> Result<String, String> {
        use ShellCommand as C;
        match command {
            C::Create {
                name,
                partitions,
                replicas,
            } => self.create(&name, partitions, replicas),
            C::Drop { name } => self.drop_table(&name),
            C::Recall { app_id, new_name } => self.recall(app_id, new_name),
            C::Ls { detailed, all, out } => self.ls(detailed, all, &out),
            C::App { name, detailed, out } => self.app(&name, detailed, &out),
            C::Nodes { detailed, status, out } => self.nodes(detailed, status, &out),
            C::ClusterInfo { out } => self.cluster_info(&out),
            C::RemoteCommand { targets, command } => {
                let (name, args) = command.split_first().expect("clap requires a command");
                self.remote_command(&targets, name, args)
            }
            C::ServerInfo { targets } => self.remote_command(&targets, "server-info", &[]),
            C::ServerStat { targets } => self.remote_command(&targets, "server-stat", &[]),
            C::Propose {
                force,
                gpid,
                kind,
                target,
                node,
            } => self.propose(force, &gpid, &kind, &target, &node),
            C::Balance { gpid, kind, from, to } => self.balance(&gpid, &kind, &from, &to),
            C::BalancePlan { out } => self.balance_plan(&out),
            C::OfflineNode {
                nodes,
                check,
                cancel,
                no_wait,
                timeout_seconds,
            } => self.offline_node(&nodes, check, cancel, no_wait, Duration::from_secs(timeout_seconds)),
            C::NodeMaintenance { node, on, seconds, .. } => self.node_maintenance(&node, on, seconds),
            C::MigrateNode { drain } => self.drain(Drain::MigratePrimaries, &drain),
            C::DowngradeNode { drain } => self.drain(Drain::DowngradeSecondaries, &drain),
            C::RemoveNode { nodes } => self.remove_node(&nodes),
            C::DddDiagnose { gpid, out } => self.ddd_diagnose(gpid.as_deref(), &out),
            C::Recover {
                file,
                list,
                skip_bad_nodes,
                skip_lost_partitions,
            } => self.recover(file.as_deref(), list.as_deref(), skip_bad_nodes, skip_lost_partitions),
            C::GetMetaLevel => self.get_meta_level(),
            C::SetMetaLevel { level } => self.set_meta_level(&level),
            C::Use { name } => self.use_table(&name),
            C::Set {
                hash_key,
                sort_key,
                value,
                ttl_seconds,
            } => self.set(&hash_key, &sort_key, &value, ttl_seconds),
            C::Get { hash_key, sort_key } => self.get(&hash_key, &sort_key),
            C::Del { hash_key, sort_key } => self.del(&hash_key, &sort_key),
            C::MultiGet {
                hash_key,
                sort_keys,
                max_count,
            } => self.multi_get(&hash_key, &sort_keys, max_count),
            C::MultiSet {
                hash_key,
                pairs,
                ttl_seconds,
            } => self.multi_set(&hash_key, &pairs, ttl_seconds),
            C::MultiDel { hash_key, sort_keys } => self.multi_del(&hash_key, &sort_keys),
            C::Incr {
                hash_key,
                sort_key,
                increment,
            } => self.incr(&hash_key, &sort_key, increment),
            C::CheckAndSet {
                hash_key,
                check_sort_key,
                check_type,
                check_operand,
                set_sort_key,
                set_value,
                ttl_seconds,
                return_check_value,
            } => self.check_and_set(data::CasArgs {
                hash_key: &hash_key,
                check_sort_key: &check_sort_key,
                check_type: &check_type,
                check_operand: &check_operand,
                set_sort_key: set_sort_key.as_deref(),
                set_value: &set_value,
                ttl_seconds,
                return_check_value,
            }),
            C::SortkeyCount { hash_key } => self.sortkey_count(&hash_key),
            C::Scan {
                hash_key,
                max_count,
                no_value,
            } => self.scan(&hash_key, max_count, no_value),
            C::FullScan { max_count, no_value } => self.full_scan(max_count, no_value),
            C::CountData { detailed, out } => self.count_data(detailed, &out),
            C::Ttl { hash_key, sort_key } => self.ttl(&hash_key, &sort_key),
            C::AppStat { app, collector, out } => self.app_stat(app.as_deref(), collector, &out),
            C::Exit => Ok(String::new()),
        }
    }

    /// Runs one line; prints its output or error.
    fn execute_line(&mut self, line: &str) -> Outcome {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Outcome::Continue(true);
        }
        let Some(words) = shlex::split(line) else {
            eprintln!("ERROR: unbalanced quotes in: {line}");
            return Outcome::Continue(false);
        };
        let command = match Line::try_parse_from(&words) {
            Ok(parsed) => parsed.command,
            Err(e) => {
                let is_help = matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp
                        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                );
                let text = e.render().to_string();
                if is_help {
                    print!("{text}");
                } else {
                    eprint!("{text}");
                }
                return Outcome::Continue(is_help);
            }
        };
        if matches!(command, ShellCommand::Exit) {
            return Outcome::Exit;
        }
        match self.run_command(command) {
            Ok(text) => {
                print!("{text}");
                let _ = std::io::stdout().flush();
                Outcome::Continue(true)
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                Outcome::Continue(false)
            }
        }
    }
}

#[derive(Helper, Hinter, Highlighter, Validator)]
struct ShellHelper;

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if before.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let matches = COMMAND_NAMES
            .iter()
            .filter(|c| c.starts_with(before))
            .map(|c| Pair {
                display: c.to_string(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((0, matches))
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".aerie_shell_history"))
}

impl Shell {
    /// A shell talking to the meta servers in `metas` (comma separated), each request bounded by
    /// `timeout`.
    fn connect(metas: &str, timeout: Duration) -> Result<Shell> {
        let metas = NodeAddr::parse_list(metas).context("--meta")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the shell runtime")?;
        let client = {
            let _guard = runtime.enter();
            Client::new(
                metas,
                ClientOptions {
                    timeout,
                    meta_timeout: timeout,
                    ..Default::default()
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
        };
        Ok(Shell {
            client,
            runtime,
            current_table: None,
        })
    }
}

pub fn run(args: ShellArgs) -> Result<ExitCode> {
    crate::logging::init("warn");
    let mut shell = Shell::connect(&args.meta, Duration::from_millis(args.timeout_ms))?;
    if let Some(command) = args.exec {
        return Ok(match shell.execute_line(&command) {
            Outcome::Continue(true) | Outcome::Exit => ExitCode::SUCCESS,
            Outcome::Continue(false) => ExitCode::FAILURE,
        });
    }
    if !std::io::stdin().is_terminal() {
        let mut all_ok = true;
        for line in std::io::stdin().lock().lines() {
            match shell.execute_line(&line.context("reading standard input")?) {
                Outcome::Continue(ok) => all_ok &= ok,
                Outcome::Exit => break,
            }
        }
        return Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    interactive(&mut shell)
}

fn interactive(shell: &mut Shell) -> Result<ExitCode> {
    let mut editor: rustyline::Editor<ShellHelper, rustyline::history::DefaultHistory> =
        rustyline::Editor::new().context("starting line editing")?;
    editor.set_helper(Some(ShellHelper));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "aerie shell; meta servers {}. Type 'help' for the commands, 'exit' to leave.",
        {
            shell
                .client
                .meta_servers()
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    loop {
        match editor.readline(">>> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if let Outcome::Exit = shell.execute_line(&line) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(ExitCode::SUCCESS)
}
