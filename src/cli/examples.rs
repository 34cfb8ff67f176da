//! Real examples under every subcommand's `--help` (and so in its man page),
//! attached to the clap definitions in one place so the commands' own files
//! stay about options.

use clap::Command;

/// (subcommand path, examples). Commands defined in their own file with an
/// `after_help` (version, completion, man, repo) are not repeated here.
const EXAMPLES: &[(&[&str], &str)] = &[
    (
        &["init"],
        "cellar -r /srv/cellar init\n  cellar -r s3://backups/cells init --password-file /root/.cellar-pw",
    ),
    (
        &["backup"],
        "cellar -r /srv/cellar backup /var/cells /etc\n  cellar backup --stdin-from-command cells.sql='mysqldump --single-transaction cells' /var/cells\n  cellar backup --exclude '*.tmp' --tag nightly /home",
    ),
    (
        &["snapshots"],
        "cellar snapshots\n  cellar snapshots --host web1 --latest 5\n  cellar snapshots --json | jq -r '.[].short_id'",
    ),
    (
        &["restore"],
        "cellar restore latest --target /tmp/r\n  cellar restore latest:/var/cells/data/personal --target /var/cells/data/personal --dry-run\n  cellar restore @2026-11-23T03:00 --target /tmp/monday --include '*.docx'",
    ),
    (
        &["ls"],
        "cellar ls latest\n  cellar ls -l latest:/var/cells/data\n  cellar ls -R 3fa2c1d0:/etc",
    ),
    (
        &["find"],
        "cellar find '*.docx'\n  cellar find '/var/cells/data/*/alice/*' --newer 2026-11-01",
    ),
    (
        &["history"],
        "cellar history /var/cells/data/personal/alice/report.docx",
    ),
    (
        &["diff"],
        "cellar diff @2026-11-23 @2026-11-24\n  cellar diff 3fa2c1d0 latest /var/cells/data",
    ),
    (
        &["dump"],
        "cellar dump latest:/cells.sql | mysql cells\n  cellar dump --archive tar latest:/etc > etc.tar",
    ),
    (
        &["mount"],
        "mkdir -p /mnt/cellar && cellar mount /mnt/cellar\n  ls /mnt/cellar/snapshots/latest/srv/cells\n  cp /mnt/cellar/snapshots/2026-11-20T03:00:00/srv/cells/cells.sql /tmp/",
    ),
    (
        &["key"],
        "cellar key list\n  cellar key add\n  cellar key passwd",
    ),
    (
        &["forget"],
        "cellar forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n  cellar forget 3fa2c1d0",
    ),
    (&["prune"], "cellar prune\n  cellar prune --dry-run"),
    (&["stats"], "cellar stats\n  cellar stats --json"),
    (&["unlock"], "cellar unlock\n  cellar unlock --remove-all"),
    (
        &["check"],
        "cellar check\n  cellar check --read-data-subset 1/7",
    ),
    (
        &["repair"],
        "cellar repair index\n  cellar repair snapshots --forget",
    ),
    (
        &["run"],
        "cellar run nightly\n  cellar run nightly --no-check",
    ),
    (
        &["config"],
        "cellar config check\n  cellar config show nightly",
    ),
];

/// The whole command line definition, examples included.
pub fn cli() -> Command {
    attach(<super::Cli as clap::CommandFactory>::command())
}

/// `cmd` with the examples attached to the subcommands it has.
pub fn attach(mut cmd: Command) -> Command {
    for (path, text) in EXAMPLES {
        let [name] = path else { continue };
        if cmd.find_subcommand(name).is_some() {
            let help = format!("Examples:\n  {text}");
            cmd = cmd.mut_subcommand(*name, |c| c.after_help(help));
        }
    }
    cmd
}
