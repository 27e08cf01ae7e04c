//! Confining a grading kernel: student code may write only inside its submission's scratch
//! folder (Linux Landlock, kernel 5.13 or newer).
//!
//! The grader sets [`SANDBOX_VAR`] to that folder before it starts the kernel; evcxr starts the
//! kernel's process by running this binary again, and [`confine_if_grading`], called first thing
//! in `main`, restricts that process before it runs any cell. A write elsewhere fails with
//! "Permission denied", which the student's code sees like any I/O error.

/// The environment variable naming the folder a grading kernel may write in.
pub const SANDBOX_VAR: &str = "KTO_LAB_GRADE_SANDBOX";

/// In a grading kernel's process (evcxr's child with [`SANDBOX_VAR`] set): allow writes only
/// beneath that folder. Anywhere else: nothing. Prints one line on stderr when the kernel
/// cannot enforce it.
pub fn confine_if_grading() {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_none() {
        return;
    }
    let Some(dir) = std::env::var_os(SANDBOX_VAR) else {
        return;
    };
    if let Err(e) = confine(std::path::Path::new(&dir)) {
        eprintln!("kto-lab grader: writes are not confined ({e})");
    }
}

#[cfg(target_os = "linux")]
fn confine(dir: &std::path::Path) -> Result<(), String> {
    use landlock::{
        path_beneath_rules, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI,
    };
    let abi = ABI::V2;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_write(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([dir], AccessFs::from_write(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err("Landlock is not available in this kernel".into()),
        _ => Ok(()),
    }
}

#[cfg(not(target_os = "linux"))]
fn confine(_dir: &std::path::Path) -> Result<(), String> {
    Err("only Linux can confine a kernel".into())
}
