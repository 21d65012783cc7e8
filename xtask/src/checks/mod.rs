//! Test-only proofs about what SmartVault ships, from AWS's own published data where the
//! emulator cannot judge: the templates, the resource-provider schemas, the IAM policies, and
//! chains of runs under the local Lambda runtime.

pub(crate) mod chains;
mod freeze_script;
mod imports;
mod keys;
pub(crate) mod policies;
pub(crate) mod schemas;
pub(crate) mod templates;

/// The `` `ticked` `` words of a Markdown table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
