//! `slot list|add|remove`: the ways to unlock a format-2 vault.

use std::io;

use serde::Serialize;

use super::context::*;
use super::output::{human_time, Human, Report};
use crate::cli::{SlotAddArgs, SlotCommand, SlotRemoveArgs};
use mcp_key_vault::display::sanitize;
use mcp_key_vault::v2::{Slot, SlotKind};
use mcp_key_verifier::time::format as fmt_time;

#[derive(Serialize)]
struct SlotView {
    id: String,
    kind: &'static str,
    label: String,
    created_at: String,
    /// The age recipient; absent for a passphrase slot (its key pair is internal).
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
    /// Whether this slot unlocked the vault for this command.
    unlocked: bool,
    #[serde(skip)]
    created: DateTime<Utc>,
}

impl SlotView {
    fn of(s: &Slot, unlocked_by: Option<&str>) -> SlotView {
        SlotView {
            id: s.id.clone(),
            kind: s.kind.as_str(),
            label: s.label.clone(),
            created_at: fmt_time(&s.created_at),
            recipient: matches!(s.kind, SlotKind::Age).then(|| s.recipient.clone()),
            unlocked: unlocked_by == Some(s.id.as_str()),
            created: s.created_at,
        }
    }

    fn line(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "{}  {:<10}  {:<16}  {}  {}{}",
            self.id,
            self.kind,
            if self.label.is_empty() {
                "-".to_string()
            } else {
                sanitize(&self.label).to_string()
            },
            human_time(&self.created),
            self.recipient.as_deref().map(sanitize).unwrap_or_default(),
            if self.unlocked {
                "  (unlocked this time)"
            } else {
                ""
            }
        )
    }
}

/// The JSON is the array of slots, as it always was; the fingerprint is in the human
/// output (and in `check --json`).
#[derive(Serialize)]
#[serde(transparent)]
struct SlotList {
    slots: Vec<SlotView>,
    #[serde(skip)]
    fingerprint: Option<String>,
}

impl Report for SlotList {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        for s in &self.slots {
            s.line(h)?;
        }
        match &self.fingerprint {
            Some(fp) => writeln!(h.out, "Vault fingerprint: {fp}"),
            None => writeln!(
                h.out,
                "Vault fingerprint: none yet (written before signing; the next change signs it)"
            ),
        }
    }
}

#[derive(Serialize)]
struct SlotChanged {
    added: Option<SlotView>,
    removed: Option<SlotView>,
    /// Whether the data key was replaced (always on removal).
    data_key_rotated: bool,
    slots: usize,
}

impl Report for SlotChanged {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if let Some(s) = &self.added {
            write!(h.out, "Added ")?;
            s.line(h)?;
        }
        if let Some(s) = &self.removed {
            write!(h.out, "Removed ")?;
            s.line(h)?;
            writeln!(
                h.out,
                "The data key was replaced: the removed slot opens no save from now on \
                 (copies of the vault file taken before stay readable with it)."
            )?;
        }
        writeln!(h.out, "The vault has {} slot(s).", self.slots)
    }
}

pub(super) fn slot(ctx: &mut Ctx, c: SlotCommand) -> Result<()> {
    match c {
        SlotCommand::List(out) => {
            let mut store = ctx.store();
            let v = store.open()?;
            let r = SlotList {
                slots: v
                    .slots()
                    .iter()
                    .map(|s| SlotView::of(s, v.unlocked_by()))
                    .collect(),
                fingerprint: v.fingerprint(),
            };
            if v.format_version() == 1 {
                warn(
                    "this vault is still in format 1 (one passphrase, no slots); the next \
                     change upgrades it",
                );
            }
            ctx.emit(out.output(), &r)
        }
        SlotCommand::Add(a) => add(ctx, a),
        SlotCommand::Remove(a) => remove(ctx, a),
    }
}

fn add(ctx: &mut Ctx, a: SlotAddArgs) -> Result<()> {
    let mut store = ctx.store();
    // Unlock first (the current member proves membership), then ask for the new
    // passphrase, as `rekey` does.
    drop(store.open()?);
    let new_pass = if a.passphrase {
        let src = crate::passphrase::Source::new_for_rekey(a.new_passphrase_file.clone());
        Some(src.get_new("the new slot")?)
    } else {
        None
    };
    let kdf = kdf_from_args(&a.kdf, KdfParams::DEFAULT)?;
    let r = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let slot = match (&new_pass, &a.age_recipient) {
            (Some(p), _) => v.add_passphrase_slot(p, kdf, &a.label, now)?,
            (None, Some(r)) => v.add_age_slot(r.trim(), &a.label, now)?,
            (None, None) => return Err(Error::usage("give --passphrase or --age-recipient R")),
        };
        Ok(SlotChanged {
            added: Some(SlotView::of(&slot, None)),
            removed: None,
            data_key_rotated: false,
            slots: v.slots().len(),
        })
    })?;
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}

fn remove(ctx: &mut Ctx, a: SlotRemoveArgs) -> Result<()> {
    let mut store = ctx.store();
    let r = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let slot = v.remove_slot(&a.target, now)?;
        Ok(SlotChanged {
            added: None,
            removed: Some(SlotView::of(&slot, None)),
            data_key_rotated: true,
            slots: v.slots().len(),
        })
    })?;
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}
