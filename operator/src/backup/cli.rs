//! The `backup`, `restore` and `erase` commands: files in, files out, against the cluster of the
//! current kubeconfig.

use super::KeySource;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How the user holds the backup key.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// A file holding the base64 of at least 32 random bytes (`head -c 32 /dev/urandom | base64`).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// A file holding a passphrase (its first line); the key is derived with Argon2id (64 MiB, 3 passes).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn source(&self) -> anyhow::Result<KeySource> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
        match (&self.key_file, &self.passphrase_file) {
            (Some(f), _) => Ok(KeySource::key_file(&read(f)?)?),
            (_, Some(f)) => {
                let text = read(f)?;
                let pass = text.lines().next().unwrap_or_default();
                anyhow::ensure!(pass.len() >= 12, "the passphrase in {} is shorter than 12 characters", f.display());
                Ok(KeySource::Passphrase(pass.as_bytes().to_vec()))
            }
            (None, None) => anyhow::bail!("give --key-file or --passphrase-file"),
        }
    }
}

/// Writes `bytes` to `path` (mode 0600) through a synced temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("renaming {} to {}: {e}", tmp.display(), path.display()))?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Where the archive goes: `out` itself, or in a directory `cascade-<UTC time>.backup`.
pub fn archive_path(out: &Path, now: u64) -> PathBuf {
    match out.is_dir() {
        true => out.join(format!("cascade-{}.backup", cascade_core::time::rfc3339_utc(now).replace(':', ""))),
        false => out.to_path_buf(),
    }
}

/// The archives in `dir` beyond the newest `keep` (names sort by time).
pub fn beyond(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("cascade-") && n.ends_with(".backup")))
        .collect();
    all.sort();
    Ok(all.into_iter().rev().skip(keep).collect())
}

pub fn backup(namespace: &str, key: &KeyArgs, out: &Path, escrow: &Path, keep: Option<usize>) -> anyhow::Result<()> {
    let source = key.source()?;
    let now = cascade_core::time::now_unix();
    let out = &archive_path(out, now);
    let written = runtime()?.block_on(async {
        let client = kube::Client::try_default().await?;
        Ok::<_, anyhow::Error>(super::backup(&client, namespace, &source, now).await?)
    })?;
    write_private(out, &written.archive)?;
    write_private(escrow, &written.escrow)?;
    if let (Some(keep), Some(dir)) = (keep, out.parent()) {
        for old in beyond(dir, keep)? {
            std::fs::remove_file(&old).map_err(|e| anyhow::anyhow!("removing {}: {e}", old.display()))?;
            println!("removed {} (keeping the newest {keep})", old.display());
        }
    }
    print!("{}", written.manifest.summary());
    println!("wrote {} ({} bytes) and the key escrow {} (keep only its latest copy)", out.display(), written.archive.len(), escrow.display());
    Ok(())
}

pub fn restore(namespace: &str, key: &KeyArgs, file: &Path, escrow: Option<&Path>) -> anyhow::Result<()> {
    let source = key.source()?;
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let escrow = escrow.map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))).transpose()?;
    let report = runtime()?.block_on(async {
        let client = kube::Client::try_default().await?;
        Ok::<_, anyhow::Error>(super::restore::restore(&client, namespace, &bytes, &source, escrow.as_deref()).await?)
    })?;
    print!("{}", report.manifest.summary());
    for tenant in &report.shredded {
        println!("not restored: tenant {tenant}: its data key was destroyed (erased); its data stays sealed");
    }
    println!("restored {} object(s); start the operator (scale it up): it renders the relay bundles again", report.created.len());
    Ok(())
}

pub fn erase_tenant(namespace: &str, tenant: &str) -> anyhow::Result<()> {
    let had = runtime()?.block_on(async {
        let client = kube::Client::try_default().await?;
        let had = super::erase_tenant(&client, namespace, tenant).await?;
        let record = serde_json::json!({ "tenant": tenant, "keyDestroyed": had });
        crate::admin_records::leave(&client, namespace, "backup.tenant_shredded", record).await?;
        Ok::<_, anyhow::Error>(had)
    })?;
    match had {
        true => println!("tenant {tenant}: data key destroyed; backups taken before can no longer yield its data. Write a new key escrow (run a backup) and discard older escrows."),
        false => println!("tenant {tenant}: no data key (nothing of it was ever backed up, or it was erased before)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_gets_timestamped_archives_and_keep_prunes_the_oldest() {
        let dir = std::env::temp_dir().join(format!("cascade-backup-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = archive_path(&dir, 1_800_000_000);
        assert_eq!(first.file_name().unwrap(), "cascade-2027-01-15T080000Z.backup");
        for t in [1_800_000_000, 1_800_086_400, 1_800_172_800] {
            std::fs::write(archive_path(&dir, t), b"x").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        assert_eq!(beyond(&dir, 2).unwrap(), vec![first]);
        assert!(beyond(&dir, 5).unwrap().is_empty());
        assert_eq!(archive_path(&dir.join("given.backup"), 0), dir.join("given.backup"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
