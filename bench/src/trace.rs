//! Sequential editing traces (josephg/editing-traces format): `{startContent,
//! endContent, txns: [{patches: [[position, deleted, inserted], ...]}]}`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub start_content: String,
    pub end_content: String,
    pub txns: Vec<Transaction>,
}

#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub patches: Vec<(u32, u32, String)>,
}

impl Transaction {
    /// Applies the patches to `text`, positions as UTF-16 offsets.
    pub fn apply(&self, text: &yrs::TextRef, transaction: &mut yrs::TransactionMut) {
        use yrs::Text;
        for (position, deleted, inserted) in &self.patches {
            if *deleted > 0 {
                text.remove_range(transaction, *position, *deleted);
            }
            if !inserted.is_empty() {
                text.insert(transaction, *position, inserted);
            }
        }
    }

    pub fn inserts(&self) -> bool {
        self.patches.iter().any(|(_, _, inserted)| !inserted.is_empty())
    }
}

impl Trace {
    /// Reads a gzip'd trace. Positions are code points; they are used as
    /// UTF-16 offsets, so a trace with characters outside the Basic
    /// Multilingual Plane is refused rather than replayed wrongly.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open the trace {}", path.display()))?;
        let mut json = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut json)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
        let trace: Self =
            serde_json::from_str(&json).with_context(|| format!("{} is not a sequential trace", path.display()))?;
        anyhow::ensure!(trace.start_content.is_empty(), "{} does not start from an empty document", path.display());
        let astral = |text: &str| text.chars().any(|c| u32::from(c) > 0xffff);
        if astral(&trace.end_content) || trace.txns.iter().flat_map(|txn| &txn.patches).any(|(_, _, text)| astral(text))
        {
            anyhow::bail!("{} has characters outside the Basic Multilingual Plane", path.display());
        }
        Ok(trace)
    }

    /// Keeps the first `transactions` transactions; the final text becomes what they produce.
    pub fn truncate(&mut self, transactions: usize) {
        if transactions >= self.txns.len() {
            return;
        }
        self.txns.truncate(transactions);
        let mut text: Vec<u16> = Vec::new();
        for (position, deleted, inserted) in self.txns.iter().flat_map(|txn| &txn.patches) {
            let position = *position as usize;
            text.splice(position..position + *deleted as usize, inserted.encode_utf16());
        }
        self.end_content = String::from_utf16_lossy(&text);
    }

    pub fn edits(&self) -> usize {
        self.txns.iter().map(|txn| txn.patches.len()).sum()
    }
}
