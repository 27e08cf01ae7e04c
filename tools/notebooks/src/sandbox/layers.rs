//! The sandbox's layers that restrict the runtime: read-only mounts, no capabilities,
//! Landlock.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::sys::{cpath, errno, os_err, Notes};
use super::SandboxSpec;

const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(super) fn mount_setattr(
    path: &Path,
    flags: libc::c_uint,
    set: u64,
    clr: u64,
) -> Result<(), String> {
    let p = cpath(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(os_err(&format!("mount_setattr {}", path.display())));
    }
    Ok(())
}

pub(super) fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> Result<(), String> {
    let s = src.map(cpath).transpose()?;
    let t = cpath(target)?;
    let f = fstype.map(|f| CString::new(f).unwrap_or_default());
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid C strings or NULL.
    if unsafe { libc::mount(ptr(&s), t.as_ptr(), ptr(&f), flags, std::ptr::null()) } != 0 {
        return Err(os_err(&format!("mount {}", target.display())));
    }
    Ok(())
}

/// A private mount namespace in which every mount is read-only and nosuid except the scratch
/// folder: Landlock cannot stop chmod, chown or utime, a read-only mount does. Returns
/// whether a fresh procfs of the new PID namespace is mounted on /proc.
pub(super) fn mounts(spec: &SandboxSpec, notes: &Notes, pidns: bool) -> bool {
    // SAFETY: unshare(2) with a flag.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        notes.missing(&os_err(
            "read-only filesystem outside the scratch folder (mount namespace: unshare)",
        ));
        return false;
    }
    let root = Path::new("/");
    // Nothing we mount propagates back to the host.
    if let Err(e) = mount(None, root, None, libc::MS_REC | libc::MS_PRIVATE) {
        notes.missing(&format!(
            "read-only filesystem outside the scratch folder ({e})"
        ));
        return false;
    }
    let mut fresh_proc = false;
    if pidns {
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        match mount(
            Some(Path::new("proc")),
            Path::new("/proc"),
            Some("proc"),
            flags,
        ) {
            Ok(()) => {
                fresh_proc = true;
                notes.ok("/proc shows only the sandbox's processes");
            }
            Err(e) => notes.missing(&format!("fresh /proc ({e}; /proc is not readable)")),
        }
    }
    let scratch = spec
        .scratch
        .canonicalize()
        .unwrap_or_else(|_| spec.scratch.clone());
    let r = mount(Some(&scratch), &scratch, None, libc::MS_BIND | libc::MS_REC)
        .and_then(|()| mount_setattr(root, AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0))
        .and_then(|()| mount_setattr(&scratch, AT_RECURSIVE, MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY));
    notes.check(
        "read-only, nosuid filesystem outside the scratch folder (no chmod/chown/utime)",
        r,
    );
    fresh_proc
}

pub(super) fn drop_capabilities() -> Result<(), String> {
    // The bounding set first (needs CAP_SETPCAP): then an execve of anything, even as
    // root, gains no capability back. Without CAP_SETPCAP (not root) there is nothing to
    // gain back from it: root's execve is the only way in.
    let mut bounding = Ok(());
    for cap in 0..64 {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            if errno() != libc::EINVAL {
                bounding = Err(os_err("PR_CAPBSET_DROP"));
            }
            break;
        }
    }
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } == 0 {
        bounding?;
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset(2) with a v3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) } != 0 {
        return Err(os_err("capset"));
    }
    Ok(())
}

pub(super) fn landlock(spec: &SandboxSpec, notes: &Notes, fresh_proc: bool) {
    use landlock::{
        make_bitflags, path_beneath_rules, Access, AccessFs, AccessNet, LandlockStatus, Ruleset,
        RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
    };
    // The newest ABI this code was tested with; older kernels get what they have (and the
    // report says what is missing).
    let abi = ABI::V6;
    let all = AccessFs::from_all(abi);
    let scratch_rights = all & !make_bitflags!(AccessFs::{Execute});
    let read_exec = AccessFs::from_read(abi);
    let mut ro: Vec<PathBuf> = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if !spec.build_dir.as_os_str().is_empty() {
        // evcxr loads the cells from <build>/target/<triple>/debug/deps; <build>/src holds
        // the cells' sources, maybe an earlier submission's: only target/ when there is one.
        let target = spec.build_dir.join("target");
        ro.push(if target.is_dir() {
            target
        } else {
            spec.build_dir.clone()
        });
    } else {
        notes.missing("build folder not given: cells cannot load");
    }
    if let Some(s) = &spec.sysroot {
        ro.push(s.clone());
    }
    if fresh_proc {
        ro.push("/proc".into());
    }
    // This binary itself: for backtraces of crashes (evcxr prints one on SIGSEGV).
    if let Ok(exe) = std::env::current_exe() {
        ro.push(exe);
    }
    ro.retain(|p| p.exists());
    let dev_rw: Vec<&str> = ["/dev/null", "/dev/zero"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let dev_r: Vec<&str> = ["/dev/urandom", "/dev/random"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let result = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([&spec.scratch], scratch_rights)))
        .and_then(|r| r.add_rules(path_beneath_rules(&ro, read_exec)))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                &dev_rw,
                make_bitflags!(AccessFs::{ReadFile | WriteFile}),
            ))
        })
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                &dev_r,
                make_bitflags!(AccessFs::{ReadFile}),
            ))
        })
        .and_then(|r| r.restrict_self());
    let status = match result {
        Ok(s) => s,
        Err(e) => {
            notes.missing(&format!("Landlock: reads, writes, TCP, signals ({e})"));
            return;
        }
    };
    if status.no_new_privs {
        notes.ok("no_new_privs");
    } else {
        notes.missing("no_new_privs");
    }
    let have = match (&status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, _) => 0,
        (_, LandlockStatus::Available { effective_abi, .. }) => effective_abi as i32,
        _ => 0,
    };
    let layers = [
        (
            1,
            "Landlock: reads only scratch, build, sysroot, system folders; writes only scratch",
        ),
        (2, "Landlock: no renaming or linking files across folders"),
        (3, "Landlock: no truncating files outside scratch"),
        (4, "Landlock: no TCP bind or connect"),
        (5, "Landlock: no ioctl on devices"),
        (
            6,
            "Landlock: no signals or abstract unix sockets outside the sandbox",
        ),
    ];
    for (min, what) in layers {
        if have >= min {
            notes.ok(&format!("{what} (ABI {have})"));
        } else {
            notes.missing(&format!(
                "{what} (kernel has Landlock ABI {have}, needs {min})"
            ));
        }
    }
}
