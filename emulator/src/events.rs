//! Events AWS services send, as tests feed them to the function: EC2's completion event of one
//! `CreateSnapshots` (the EBS user guide's example, with the fields the function reads).

/// EC2's "EBS Multi-Volume Snapshots Completion Status" event, succeeded, for `snapshot_ids`
/// made in `account` and `region`.
pub fn snapshots_completed(
    account: &str,
    region: &str,
    snapshot_ids: &[String],
) -> serde_json::Value {
    let arn = |id: &String| format!("arn:aws:ec2::{region}:snapshot/{id}");
    serde_json::json!({
        "version": "0", "id": "7c3e6a1e-0000-0000-0000-000000000000",
        "detail-type": "EBS Multi-Volume Snapshots Completion Status", "source": "aws.ec2",
        "account": account, "time": "2026-11-26T01:05:00Z", "region": region,
        "resources": snapshot_ids.iter().map(arn).collect::<Vec<_>>(),
        "detail": {
            "event": "createSnapshots", "result": "succeeded", "cause": "", "request-id": "",
            "startTime": "2026-11-26T01:00:00Z", "endTime": "2026-11-26T01:05:00Z",
            "snapshots": snapshot_ids.iter().map(|id| serde_json::json!({
                "snapshot_id": arn(id),
                "source": format!("arn:aws:ec2::{region}:volume/vol-0"),
                "status": "completed"
            })).collect::<Vec<_>>()
        }
    })
}
