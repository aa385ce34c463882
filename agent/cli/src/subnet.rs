//! `bootwave subnet …` and `bootwave profile …`: add, remove, list and show
//! subnets and boot profiles through `PutSubnet`/`DeleteSubnet` and
//! `PutProfile`/`DeleteProfile`.
//!
//! The CLI checks only the shape of its arguments; the agent validates the
//! object with the data plane's own parser and its error (naming the field)
//! is printed as the command's error.

use std::path::PathBuf;

use bootwave_proto::v1;
use clap::{Args, Subcommand};
use serde_json::json;

use super::commands::changed as changed_reply;
use super::output;
use super::{Client, EXIT_NOT_FOUND, Failure};

/// Subnet commands.
#[derive(Debug, Subcommand)]
pub enum SubnetCommand {
    /// Add or replace a subnet.
    Add(Box<SubnetArgs>),
    /// Remove a subnet.
    Rm {
        #[command(flatten)]
        network: NetworkArg,
    },
    /// List subnets.
    Ls,
    /// Show one subnet.
    Show {
        #[command(flatten)]
        network: NetworkArg,
    },
}

/// A subnet's network, given as `--network CIDR` or as the first argument.
#[derive(Debug, Args)]
pub struct NetworkArg {
    /// Network in CIDR form (or `--network CIDR`).
    #[arg(
        value_name = "CIDR",
        required_unless_present = "network_flag",
        conflicts_with = "network_flag"
    )]
    network: Option<String>,
    /// Network in CIDR form.
    #[arg(long = "network", id = "network_flag", value_name = "CIDR")]
    network_flag: Option<String>,
}

impl NetworkArg {
    fn into_string(self) -> String {
        // clap requires one of the two.
        self.network.or(self.network_flag).unwrap_or_default()
    }
}

/// The fields of `subnet add`.
#[derive(Debug, Args)]
pub struct SubnetArgs {
    /// Network in CIDR form, host bits zero (e.g. 10.0.0.0/24).
    #[arg(long, value_name = "CIDR")]
    network: String,
    /// A dynamic pool `START-END`; repeatable.
    #[arg(long = "range", value_name = "A-B", value_parser = parse_range)]
    ranges: Vec<v1::AddrRange>,
    /// A router (option 3); repeatable.
    #[arg(long = "router", value_name = "ADDR")]
    routers: Vec<String>,
    /// A DNS server (option 6); repeatable.
    #[arg(long = "dns", value_name = "ADDR")]
    dns: Vec<String>,
    /// An NTP server (option 42); repeatable.
    #[arg(long = "ntp", value_name = "ADDR")]
    ntp: Vec<String>,
    /// Domain name (option 15).
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// siaddr when no rule names one.
    #[arg(long, value_name = "ADDR")]
    next_server: Option<String>,
    /// Policy for clients without a host entry.
    #[arg(long, value_name = "allow|deny", value_parser = parse_unknown)]
    unknown_clients: Option<v1::UnknownClients>,
    /// Default lease time in seconds.
    #[arg(long, value_name = "S")]
    lease_time: Option<u32>,
    /// Maximum lease time in seconds.
    #[arg(long, value_name = "S")]
    max_lease_time: Option<u32>,
    /// BOOTP clients without a fixed address get a pool address.
    #[arg(long)]
    dynamic_bootp: bool,
    /// How long such a binding lasts in seconds (default: the lease time).
    #[arg(long, value_name = "S", requires = "dynamic_bootp")]
    dynamic_bootp_lease_length: Option<u32>,
    /// A boot rule of this subnet (see `profile add --rule`); repeatable.
    #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule)]
    rules: Vec<v1::BootRule>,
}

/// Profile commands.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Add or replace a boot profile.
    Add {
        /// The profile's name.
        name: String,
        /// A boot rule, tried in the order given; repeatable.
        /// `KEY=VALUE` pairs separated by commas: `arch=N[|N…]` (option 93),
        /// `user-class=TEXT` (option 77), `ipxe=yes|no` (option 175 present),
        /// `file=NAME` (required), `next-server=ADDR`.
        #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule)]
        rules: Vec<v1::BootRule>,
        /// An iPXE script template served for this profile.
        #[arg(long, value_name = "FILE")]
        ipxe_script: Option<PathBuf>,
    },
    /// Remove a boot profile.
    Rm {
        /// The profile's name.
        name: String,
    },
    /// List boot profiles.
    Ls,
    /// Show one boot profile.
    Show {
        /// The profile's name.
        name: String,
    },
}

/// Runs a subnet command.
pub(super) async fn run_subnet(
    command: SubnetCommand,
    client: &mut Client,
    json: bool,
) -> Result<(), Failure> {
    match command {
        SubnetCommand::Add(args) => {
            let request = v1::PutSubnetRequest {
                subnet: Some(args.into_subnet()),
            };
            changed_reply(client.put_subnet(request).await?.into_inner(), json)
        }
        SubnetCommand::Rm { network } => {
            let request = v1::DeleteSubnetRequest {
                network: network.into_string(),
            };
            changed_reply(client.delete_subnet(request).await?.into_inner(), json)
        }
        SubnetCommand::Ls => {
            let subnets = list_subnets(client).await?;
            print_subnets(&subnets, json);
            Ok(())
        }
        SubnetCommand::Show { network } => {
            let network = network.into_string();
            let subnet = list_subnets(client)
                .await?
                .into_iter()
                .find(|s| s.network == network)
                .ok_or_else(|| not_found(format!("subnet {network} not found")))?;
            if json {
                output::json_line(&output::subnet_json(&subnet));
            } else {
                print_subnet_detail(&subnet);
            }
            Ok(())
        }
    }
}

/// Runs a profile command.
pub(super) async fn run_profile(
    command: ProfileCommand,
    client: &mut Client,
    json: bool,
) -> Result<(), Failure> {
    match command {
        ProfileCommand::Add {
            name,
            rules,
            ipxe_script,
        } => {
            let ipxe_script = match ipxe_script {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| Failure {
                    code: super::EXIT_ERROR,
                    message: format!("{}: {e}", path.display()),
                })?,
                None => String::new(),
            };
            let profile = v1::Profile {
                name,
                rules,
                ipxe_script,
                script_path: String::new(),
            };
            let request = v1::PutProfileRequest {
                profile: Some(profile),
            };
            changed_reply(client.put_profile(request).await?.into_inner(), json)
        }
        ProfileCommand::Rm { name } => {
            let request = v1::DeleteProfileRequest { name };
            changed_reply(client.delete_profile(request).await?.into_inner(), json)
        }
        ProfileCommand::Ls => {
            let profiles = list_profiles(client).await?;
            if json {
                let list: Vec<_> = profiles.iter().map(output::profile_json).collect();
                output::json_line(&json!(list));
            } else {
                let rows: Vec<_> = profiles.iter().map(profile_row).collect();
                output::table(&["NAME", "RULES", "IPXE-SCRIPT"], &rows);
            }
            Ok(())
        }
        ProfileCommand::Show { name } => {
            let profile = list_profiles(client)
                .await?
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| not_found(format!("profile {name} not found")))?;
            if json {
                output::json_line(&output::profile_json(&profile));
                return Ok(());
            }
            println!("name: {}", profile.name);
            for (i, rule) in profile.rules.iter().enumerate() {
                println!("rule {i}: {}", rule_text(rule));
            }
            if !profile.ipxe_script.is_empty() {
                println!("ipxe-script:\n{}", profile.ipxe_script.trim_end());
            }
            Ok(())
        }
    }
}

impl SubnetArgs {
    fn into_subnet(self) -> v1::Subnet {
        v1::Subnet {
            network: self.network,
            ranges: self.ranges,
            routers: self.routers,
            dns: self.dns,
            ntp: self.ntp,
            domain: self.domain.unwrap_or_default(),
            default_lease_time_s: self.lease_time.unwrap_or(0),
            max_lease_time_s: self.max_lease_time.unwrap_or(0),
            next_server: self.next_server.unwrap_or_default(),
            unknown_clients: self
                .unknown_clients
                .unwrap_or(v1::UnknownClients::Unspecified)
                .into(),
            boot_rules: self.rules,
            broadcast: String::new(),
            time_offset: None,
            dynamic_bootp: self.dynamic_bootp,
            dynamic_bootp_lease_length_s: self.dynamic_bootp_lease_length.unwrap_or(0),
        }
    }
}

async fn list_subnets(client: &mut Client) -> Result<Vec<v1::Subnet>, Failure> {
    let reply = client.list_subnets(v1::ListSubnetsRequest {}).await?;
    Ok(reply.into_inner().subnets)
}

async fn list_profiles(client: &mut Client) -> Result<Vec<v1::Profile>, Failure> {
    let reply = client.list_profiles(v1::ListProfilesRequest {}).await?;
    Ok(reply.into_inner().profiles)
}

fn not_found(message: String) -> Failure {
    Failure {
        code: EXIT_NOT_FOUND,
        message,
    }
}

fn print_subnets(subnets: &[v1::Subnet], json: bool) {
    if json {
        let list: Vec<_> = subnets.iter().map(output::subnet_json).collect();
        output::json_line(&json!(list));
    } else {
        let rows: Vec<_> = subnets.iter().map(output::subnet_row).collect();
        output::table(
            &["NETWORK", "RANGES", "ROUTERS", "NEXT-SERVER", "RULES"],
            &rows,
        );
    }
}

fn print_subnet_detail(s: &v1::Subnet) {
    let ranges: Vec<String> = s
        .ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect();
    let unknown = match v1::UnknownClients::try_from(s.unknown_clients) {
        Ok(v1::UnknownClients::Allow) => "allow",
        Ok(v1::UnknownClients::Deny) => "deny",
        _ => "inherit",
    };
    let lines = [
        ("network", s.network.clone()),
        ("ranges", ranges.join(",")),
        ("routers", s.routers.join(",")),
        ("dns", s.dns.join(",")),
        ("ntp", s.ntp.join(",")),
        ("domain", s.domain.clone()),
        ("next-server", s.next_server.clone()),
        ("unknown-clients", unknown.to_owned()),
        ("lease-time", seconds(s.default_lease_time_s)),
        ("max-lease-time", seconds(s.max_lease_time_s)),
    ];
    for (key, value) in lines {
        let value = if value.is_empty() { "-" } else { &value };
        println!("{key}: {value}");
    }
    for (i, rule) in s.boot_rules.iter().enumerate() {
        println!("rule {i}: {}", rule_text(rule));
    }
}

fn seconds(s: u32) -> String {
    if s == 0 {
        String::new()
    } else {
        format!("{s}s")
    }
}

fn profile_row(p: &v1::Profile) -> Vec<String> {
    let script = if p.ipxe_script.is_empty() {
        "no"
    } else {
        "yes"
    };
    vec![p.name.clone(), p.rules.len().to_string(), script.to_owned()]
}

/// A rule in the syntax `--rule` accepts.
fn rule_text(r: &v1::BootRule) -> String {
    let mut parts = Vec::new();
    if !r.arch.is_empty() {
        let arch: Vec<String> = r.arch.iter().map(u32::to_string).collect();
        parts.push(format!("arch={}", arch.join("|")));
    }
    if !r.user_class.is_empty() {
        parts.push(format!("user-class={}", r.user_class));
    }
    if let Some(encap) = r.ipxe_encap {
        parts.push(format!("ipxe={}", if encap { "yes" } else { "no" }));
    }
    parts.push(format!("file={}", r.filename));
    if !r.next_server.is_empty() {
        parts.push(format!("next-server={}", r.next_server));
    }
    if r.http {
        parts.push("http=yes".to_owned());
    }
    parts.join(",")
}

/// Parses `arch=7,user-class=iPXE,file=refind.pxe[,next-server=A][,ipxe=yes][,http=yes]`.
fn parse_rule(text: &str) -> Result<v1::BootRule, String> {
    let mut rule = v1::BootRule::default();
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        match key {
            "arch" => {
                for arch in value.split('|') {
                    let arch = arch
                        .parse()
                        .map_err(|_| format!("arch: {arch:?} is not a number"))?;
                    rule.arch.push(arch);
                }
            }
            "user-class" => rule.user_class = value.to_owned(),
            "ipxe" => {
                rule.ipxe_encap = Some(match value {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(format!("ipxe: {value:?} is not yes or no")),
                });
            }
            "http" => {
                rule.http = match value {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(format!("http: {value:?} is not yes or no")),
                };
            }
            "file" => rule.filename = value.to_owned(),
            "next-server" => rule.next_server = value.to_owned(),
            _ => {
                return Err(format!(
                    "unknown key {key:?} (arch, user-class, ipxe, file, next-server, http)"
                ));
            }
        }
    }
    if rule.filename.is_empty() {
        return Err("file=NAME is required".into());
    }
    Ok(rule)
}

/// Parses `START-END`.
fn parse_range(text: &str) -> Result<v1::AddrRange, String> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not START-END"))?;
    Ok(v1::AddrRange {
        start: start.trim().to_owned(),
        end: end.trim().to_owned(),
    })
}

fn parse_unknown(text: &str) -> Result<v1::UnknownClients, String> {
    match text {
        "allow" => Ok(v1::UnknownClients::Allow),
        "deny" => Ok(v1::UnknownClients::Deny),
        _ => Err(format!("{text:?} is not allow or deny")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rule_syntax_round_trips() {
        let text = "arch=7|9,user-class=iPXE,ipxe=yes,file=refind.pxe,next-server=10.0.0.1";
        let rule = parse_rule(text).unwrap();
        assert_eq!(rule.arch, vec![7, 9]);
        assert_eq!(rule.user_class, "iPXE");
        assert_eq!(rule.ipxe_encap, Some(true));
        assert_eq!(rule.filename, "refind.pxe");
        assert_eq!(rule.next_server, "10.0.0.1");
        assert_eq!(rule_text(&rule), text);
        let text = "arch=16,file=ipxe.efi,http=yes";
        let rule = parse_rule(text).unwrap();
        assert!(rule.http);
        assert_eq!(rule_text(&rule), text);
        assert!(
            parse_rule("file=a,http=maybe")
                .unwrap_err()
                .contains("http")
        );
    }

    #[test]
    fn bad_rules_say_why() {
        assert!(parse_rule("arch=7").unwrap_err().contains("file=NAME"));
        assert!(parse_rule("arch=x64,file=a").unwrap_err().contains("arch"));
        assert!(
            parse_rule("colour=red,file=a")
                .unwrap_err()
                .contains("colour")
        );
        assert!(parse_rule("file").unwrap_err().contains("KEY=VALUE"));
        assert!(
            parse_rule("ipxe=maybe,file=a")
                .unwrap_err()
                .contains("ipxe")
        );
    }

    #[test]
    fn ranges_and_policies() {
        let r = parse_range("10.0.0.10-10.0.0.20").unwrap();
        assert_eq!(
            (r.start.as_str(), r.end.as_str()),
            ("10.0.0.10", "10.0.0.20")
        );
        assert!(parse_range("10.0.0.10").is_err());
        assert_eq!(parse_unknown("deny"), Ok(v1::UnknownClients::Deny));
        assert!(parse_unknown("maybe").is_err());
    }
}
