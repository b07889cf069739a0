//! `weir circuit add|change|del`: one circuit of `[subscribers]` changed in
//! the running configuration.
//!
//! The circuits are written out as a ShapedDevices.csv (with a new row for
//! `add`), and the running configuration's text is compiled again against
//! it (`weir_config::parse_with`), so a circuit from the API passes every
//! check a circuit from the file does (addresses unique, parent known, min
//! at most max, …). The result is applied as a reload applies a file:
//! changed plans in place, class by class; an added or removed circuit by
//! rebuilding its trees, every other class keeping its queue and buckets.
//! Nothing is written to the files: a reload reads them again.

use weir_api::{CircuitAction, CircuitRequest};
use weir_config::subscribers::{csv_row, write_shaped_devices, Given, Subscribers};
use weir_config::Rate;

/// The subscriber files' texts with the change made, to compile the
/// running configuration against. Err: what is wrong with the request
/// (the checks of the files themselves come after, in the compile).
pub(crate) fn given(subs: &Subscribers, a: &CircuitRequest) -> Result<Given, String> {
    let mut circuits = subs.circuits.clone();
    let at = circuits.iter().position(|c| c.id == a.id);
    let mut extra_row = None;
    match (a.action, at) {
        (CircuitAction::Add, Some(_)) => {
            return Err(format!(
                "circuit {} exists; expected a new circuit id (or `weir circuit change`)",
                a.id
            ))
        }
        (CircuitAction::Change | CircuitAction::Del, None) => {
            return Err(format!("no circuit {}; expected the id of a circuit", a.id))
        }
        (CircuitAction::Del, Some(j)) => {
            if a.name.is_some()
                || a.parent.is_some()
                || !a.ipv4.is_empty()
                || !a.ipv6.is_empty()
                || plan_given(a)
            {
                return Err("`del` takes only the circuit id".to_string());
            }
            circuits.remove(j);
        }
        (CircuitAction::Change, Some(j)) => {
            if !a.ipv4.is_empty() || !a.ipv6.is_empty() {
                return Err(
                    "`change` does not change addresses; expected `del` and `add` for new ones"
                        .to_string(),
                );
            }
            let c = &mut circuits[j];
            if let Some(n) = &a.name {
                c.name = n.clone();
            }
            if let Some(p) = &a.parent {
                c.parent = (!p.is_empty()).then(|| p.clone());
            }
            let down = plan(&a.download_min, &a.download_max, "download")?;
            let up = plan(&a.upload_min, &a.upload_max, "upload")?;
            if let Some((min, max)) = down {
                c.download.min = min.unwrap_or(c.download.min);
                c.download.max = max.unwrap_or(c.download.max);
            }
            if let Some((min, max)) = up {
                c.upload.min = min.unwrap_or(c.upload.min);
                c.upload.max = max.unwrap_or(c.upload.max);
            }
        }
        (CircuitAction::Add, None) => {
            if a.ipv4.is_empty() && a.ipv6.is_empty() {
                return Err("`add` needs the circuit's addresses (--ip)".to_string());
            }
            let (Some(dmax), Some(umax)) = (&a.download_max, &a.upload_max) else {
                return Err("`add` needs the circuit's plan: --download and --upload (Mbps, MIN:MAX or MAX)".to_string());
            };
            // The cells as a row of the file: the reader checks them.
            let cells = [
                a.id.clone(),
                a.name.clone().unwrap_or_else(|| a.id.clone()),
                format!("{}-device", a.id),
                a.name.clone().unwrap_or_else(|| a.id.clone()),
                a.parent.clone().unwrap_or_default(),
                String::new(),
                a.ipv4.join(", "),
                a.ipv6.join(", "),
                a.download_min.clone().unwrap_or_else(|| dmax.clone()),
                a.upload_min.clone().unwrap_or_else(|| umax.clone()),
                dmax.clone(),
                umax.clone(),
                "added by weir circuit".to_string(),
                String::new(),
            ];
            extra_row = Some(csv_row(&cells));
        }
    }
    let mut devices = write_shaped_devices(&circuits);
    if let Some(row) = extra_row {
        devices.push_str(&row);
        devices.push('\n');
    }
    Ok(Given {
        devices,
        network: subs.network_text.clone(),
    })
}

fn plan_given(a: &CircuitRequest) -> bool {
    a.download_min.is_some()
        || a.download_max.is_some()
        || a.upload_min.is_some()
        || a.upload_max.is_some()
}

/// A direction's new min and max, each None when not given; None when
/// neither is.
#[allow(clippy::type_complexity)]
fn plan(
    min: &Option<String>,
    max: &Option<String>,
    what: &str,
) -> Result<Option<(Option<Rate>, Option<Rate>)>, String> {
    if min.is_none() && max.is_none() {
        return Ok(None);
    }
    let mbps = |v: &Option<String>, bound: &str| -> Result<Option<Rate>, String> {
        let Some(t) = v else { return Ok(None) };
        match Rate::parse(&format!("{}mbit", t.trim()), None) {
            Ok(r) if r.bits_per_sec() > 0 => Ok(Some(r)),
            _ => Err(format!(
                "{what} {bound} `{t}` is not a rate in Mbps; expected a number above 0, as 25 or 2.5"
            )),
        }
    };
    Ok(Some((mbps(min, "min")?, mbps(max, "max")?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::Config;

    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/subscribers.toml");

    fn example() -> (String, Config) {
        let loaded = weir_config::load(std::path::Path::new(FILE)).expect("the example loads");
        (loaded.source, loaded.config)
    }

    fn args(action: CircuitAction, id: &str) -> CircuitRequest {
        CircuitRequest {
            action,
            id: id.to_string(),
            ..CircuitRequest::default()
        }
    }

    /// The running file compiled again with `a`'s change.
    fn changed(a: &CircuitRequest) -> Result<Config, String> {
        let (text, config) = example();
        let subs = config.subscribers.as_ref().expect("[subscribers]");
        let given = given(subs, a)?;
        weir_config::parse_with(&text, FILE, Some(&given))
            .map(|l| l.config)
            .map_err(|d| {
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    }

    #[test]
    fn add_change_and_del_compile_the_file_again() {
        let mut add = args(CircuitAction::Add, "2001");
        add.parent = Some("AP_B".into());
        add.download_max = Some("100".into());
        add.download_min = Some("10".into());
        add.upload_max = Some("20".into());
        add.ipv4 = vec!["198.18.1.9".into()];
        add.ipv6 = vec!["2001:2:0:2001::/64".into()];
        let c = changed(&add).expect("added");
        let s = c.subscribers.as_ref().expect("subscribers");
        let new = s
            .circuits
            .iter()
            .find(|c| c.id == "2001")
            .expect("the new circuit");
        assert_eq!(new.parent.as_deref(), Some("AP_B"));
        assert_eq!(new.upload.min, new.upload.max, "a min left out is the max");
        assert_eq!(s.circuits.len(), 6);

        let mut change = args(CircuitAction::Change, "1004");
        change.download_max = Some("5".into());
        let c = changed(&change).expect("changed");
        let k = c
            .tree("down")
            .expect("down")
            .class_index("1004")
            .expect("class");
        assert_eq!(
            c.tree("down").expect("down").classes[k as usize]
                .ceil
                .bits_per_sec(),
            5_000_000
        );

        let c = changed(&args(CircuitAction::Del, "1004")).expect("removed");
        assert!(c.tree("down").expect("down").class_index("1004").is_none());
    }

    #[test]
    fn bad_requests_are_refused_with_why() {
        let e = changed(&args(CircuitAction::Del, "nope")).expect_err("unknown");
        assert!(e.contains("no circuit nope"), "{e}");
        let mut dup = args(CircuitAction::Add, "2002");
        dup.download_max = Some("1".into());
        dup.upload_max = Some("1".into());
        dup.ipv4 = vec!["198.18.1.1".into()];
        let e = changed(&dup).expect_err("a duplicate address");
        assert!(
            e.contains("198.18.1.1") && e.contains("as changed by weir circuit"),
            "{e}"
        );
        let mut exists = dup;
        exists.id = "1001".into();
        assert!(changed(&exists)
            .expect_err("exists")
            .contains("circuit 1001 exists"));
        let mut low = args(CircuitAction::Change, "1001");
        low.download_max = Some("1".into());
        let e = changed(&low).expect_err("max below min");
        assert!(e.contains("is above Download Max"), "{e}");
        let mut bad = args(CircuitAction::Change, "1001");
        bad.upload_max = Some("fast".into());
        assert!(changed(&bad)
            .expect_err("not a rate")
            .contains("not a rate in Mbps"));
    }
}
