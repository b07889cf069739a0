//! The subcommands that ask a running `weir run` over its API socket:
//! `show`, `class change`, `reload`, `whois` and `top` (the socket client and the
//! screens are in [`crate::client`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::{client, exit};

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// class, qdisc, filter, apps (per app: flows, packets, bytes, drops,
    /// class, remark, and the flow table) or flows (the top flows).
    #[arg(value_enum)]
    what: ShowArg,
    /// With statistics (tc's -s).
    #[arg(short = 's', long)]
    stats: bool,
    /// JSON (tc's -j).
    #[arg(short = 'j', long)]
    json: bool,
    /// Only this tree.
    #[arg(long)]
    tree: Option<String>,
    /// flows: only the flows of this app.
    #[arg(long)]
    app: Option<String>,
    /// flows: how many, per tree; class: only the N classes sending the
    /// most now, per tree.
    #[arg(long)]
    top: Option<usize>,
    /// class: only this class (id or name, e.g. a circuit id or a site)
    /// and the classes under it.
    #[arg(long)]
    class: Option<String>,
    /// flows: ranked by rate (the rate of the flow's last bulk window, see
    /// docs/operations.md) or by bytes.
    #[arg(long, value_enum)]
    by: Option<ByArg>,
    /// The API socket of the `weir run` to ask.
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ShowArg {
    Class,
    Qdisc,
    Filter,
    Apps,
    Flows,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ByArg {
    Rate,
    Bytes,
}

pub fn show(args: ShowArgs) -> ExitCode {
    match show_request(args) {
        Ok((socket, req)) => ask(&socket, &req),
        Err(e) => {
            eprintln!("weir show: {e}");
            ExitCode::from(2)
        }
    }
}

/// The request `weir show` sends, or why its options do not go together.
fn show_request(args: ShowArgs) -> Result<(PathBuf, weir_api::Request), String> {
    let what = match args.what {
        ShowArg::Class => weir_api::ShowWhat::Class,
        ShowArg::Qdisc => weir_api::ShowWhat::Qdisc,
        ShowArg::Filter => weir_api::ShowWhat::Filter,
        ShowArg::Apps => weir_api::ShowWhat::Apps,
        ShowArg::Flows => {
            if args.class.is_some() {
                return Err("--class goes with `weir show class`, not flows".to_string());
            }
            let req = weir_api::Request::Flows {
                tree: args.tree,
                app: args.app,
                top: args.top.unwrap_or(weir_api::DEFAULT_TOP),
                by: match args.by {
                    Some(ByArg::Bytes) => weir_api::FlowsBy::Bytes,
                    Some(ByArg::Rate) | None => weir_api::FlowsBy::Rate,
                },
                json: args.json,
            };
            return Ok((args.socket, req));
        }
    };
    if args.app.is_some() || args.by.is_some() {
        return Err("--app and --by go with `weir show flows`".to_string());
    }
    let is_class = matches!(what, weir_api::ShowWhat::Class);
    if !is_class && (args.top.is_some() || args.class.is_some()) {
        return Err(
            "--top and --class go with `weir show class` (and --top with `weir show flows`)"
                .to_string(),
        );
    }
    let req = weir_api::Request::Show {
        what,
        stats: args.stats,
        json: args.json,
        tree: args.tree,
        class: args.class,
        top: args.top,
    };
    Ok((args.socket, req))
}

#[derive(clap::Subcommand, Debug)]
pub enum ClassCmd {
    /// CLASSID then any of: rate R, ceil C, burst B, cburst B, prio P,
    /// quantum Q (tc units).
    Change {
        /// Class id (1:10) or name.
        classid: String,
        /// The tree, when the class id is in more than one.
        #[arg(long)]
        tree: Option<String>,
        /// Parameters as tc takes them: `rate 10mbit ceil 20mbit …`.
        #[arg(num_args = 1..)]
        params: Vec<String>,
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

pub fn class(cmd: ClassCmd) -> ExitCode {
    let ClassCmd::Change {
        classid,
        tree,
        params,
        socket,
    } = cmd;
    match client::class_change_request(&classid, tree, &params) {
        Ok(req) => ask(&socket, &req),
        Err(e) => {
            eprintln!("weir class change: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ReloadArgs {
    /// The API socket of the `weir run` to ask.
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn reload(args: ReloadArgs) -> ExitCode {
    ask(&args.socket, &weir_api::Request::Reload)
}

#[derive(clap::Subcommand, Debug)]
pub enum CircuitCmd {
    /// A new circuit: its id, plan and addresses (one device).
    Add {
        /// Circuit id (unique, as in ShapedDevices.csv).
        id: String,
        #[command(flatten)]
        c: CircuitOpts,
        /// An IPv4 or IPv6 address or prefix of its device; repeat for more.
        #[arg(long = "ip", required = true)]
        ip: Vec<String>,
    },
    /// Change a circuit's plan, name or parent node (what is not given
    /// stays; addresses change by `del` and `add`).
    Change {
        id: String,
        #[command(flatten)]
        c: CircuitOpts,
    },
    /// Remove a circuit: its queued packets are dropped as `flushed`.
    Del {
        id: String,
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct CircuitOpts {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// The node (site or access point) it hangs under; "" for the top.
    #[arg(long)]
    parent: Option<String>,
    /// Download plan, Mbps: MIN:MAX, or MAX alone (add: min = max;
    /// change: the min stays).
    #[arg(long)]
    download: Option<String>,
    /// Upload plan, Mbps: MIN:MAX, or MAX alone (add: min = max; change:
    /// the min stays).
    #[arg(long)]
    upload: Option<String>,
    /// The API socket of the `weir run` to ask.
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// `MIN:MAX` or `MAX` as (min, max).
fn min_max(v: &Option<String>) -> (Option<String>, Option<String>) {
    match v.as_deref().map(|t| t.split_once(':')) {
        None => (None, None),
        Some(Some((min, max))) => (Some(min.to_string()), Some(max.to_string())),
        Some(None) => (None, v.clone()),
    }
}

pub fn circuit(cmd: CircuitCmd) -> ExitCode {
    let (action, id, c, ip, socket) = match cmd {
        CircuitCmd::Add { id, c, ip } => {
            let socket = c.socket.clone();
            (weir_api::CircuitAction::Add, id, Some(c), ip, socket)
        }
        CircuitCmd::Change { id, c } => {
            let socket = c.socket.clone();
            (
                weir_api::CircuitAction::Change,
                id,
                Some(c),
                Vec::new(),
                socket,
            )
        }
        CircuitCmd::Del { id, socket } => {
            (weir_api::CircuitAction::Del, id, None, Vec::new(), socket)
        }
    };
    let (ipv6, ipv4): (Vec<String>, Vec<String>) = ip.into_iter().partition(|a| a.contains(':'));
    let mut req = weir_api::CircuitRequest {
        action,
        id,
        ipv4,
        ipv6,
        ..weir_api::CircuitRequest::default()
    };
    if let Some(c) = c {
        (req.download_min, req.download_max) = min_max(&c.download);
        (req.upload_min, req.upload_max) = min_max(&c.upload);
        req.name = c.name;
        req.parent = c.parent;
    }
    ask(&socket, &weir_api::Request::Circuit(req))
}

#[derive(clap::Args, Debug)]
pub struct WhoisArgs {
    /// An IPv4 or IPv6 address of a subscriber.
    address: String,
    /// JSON.
    #[arg(short = 'j', long)]
    json: bool,
    /// The API socket of the `weir run` to ask.
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn whois(args: WhoisArgs) -> ExitCode {
    ask(
        &args.socket,
        &weir_api::Request::Whois {
            address: args.address,
            json: args.json,
        },
    )
}

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Refresh period.
    #[arg(long, value_parser = crate::parse_interval, default_value = "1s")]
    interval: Duration,
    /// Stop after this many refreshes (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// The API socket of the `weir run` to ask.
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn top(args: TopArgs) -> ExitCode {
    exit(client::top(
        &args.socket,
        args.interval,
        args.count,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

fn ask(socket: &std::path::Path, req: &weir_api::Request) -> ExitCode {
    exit(client::ask(
        socket,
        req,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Show {
        #[command(flatten)]
        args: ShowArgs,
    }

    fn request(words: &[&str]) -> Result<weir_api::Request, String> {
        let cli = Show::try_parse_from(std::iter::once("show").chain(words.iter().copied()))
            .map_err(|e| e.to_string())?;
        show_request(cli.args).map(|(_, r)| r)
    }

    /// `weir show flows` and `weir show apps` as requests, with the
    /// defaults the API documents.
    #[test]
    fn apps_and_flows_requests() {
        assert_eq!(
            request(&["flows"]),
            Ok(weir_api::Request::Flows {
                tree: None,
                app: None,
                top: weir_api::DEFAULT_TOP,
                by: weir_api::FlowsBy::Rate,
                json: false,
            })
        );
        assert_eq!(
            request(&[
                "flows", "--tree", "up", "--app", "voice", "--top", "3", "--by", "bytes", "-j"
            ]),
            Ok(weir_api::Request::Flows {
                tree: Some("up".into()),
                app: Some("voice".into()),
                top: 3,
                by: weir_api::FlowsBy::Bytes,
                json: true,
            })
        );
        assert_eq!(
            request(&["apps", "--tree", "up"]),
            Ok(weir_api::Request::Show {
                what: weir_api::ShowWhat::Apps,
                stats: false,
                json: false,
                tree: Some("up".into()),
                class: None,
                top: None,
            })
        );
        assert_eq!(
            request(&["class", "--class", "AP_A", "--top", "5", "-s"]),
            Ok(weir_api::Request::Show {
                what: weir_api::ShowWhat::Class,
                stats: true,
                json: false,
                tree: None,
                class: Some("AP_A".into()),
                top: Some(5),
            })
        );
    }

    /// Flow options with another kind of show are refused, not ignored.
    #[test]
    fn flow_options_go_with_flows_only() {
        for words in [
            &["class", "--app", "voice"][..],
            &["apps", "--top", "5"],
            &["qdisc", "--by", "rate"],
            &["flows", "--class", "1:10"],
            &["qdisc", "--class", "1:10"],
        ] {
            let e = request(words).expect_err("refused");
            assert!(e.contains("with `weir show"), "{words:?}: {e}");
        }
        assert!(request(&["flows", "--by", "speed"]).is_err());
    }

    /// The request line the API reads: defaults fill what a script leaves
    /// out.
    #[test]
    fn a_flows_request_line_takes_defaults() {
        let r: weir_api::Request = serde_json::from_str(r#"{"cmd": "flows"}"#).expect("decodes");
        assert_eq!(
            r,
            weir_api::Request::Flows {
                tree: None,
                app: None,
                top: 10,
                by: weir_api::FlowsBy::Rate,
                json: false,
            }
        );
        let r: weir_api::Request =
            serde_json::from_str(r#"{"cmd": "show", "what": "apps"}"#).expect("decodes");
        assert!(matches!(
            r,
            weir_api::Request::Show {
                what: weir_api::ShowWhat::Apps,
                ..
            }
        ));
    }
}
