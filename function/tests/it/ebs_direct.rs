//! The EBS direct read on the emulator (its EBS direct patch, emulator/fast_moto.py): a signed
//! `ListChangedBlocks` through the SDK's runtime counts what a snapshot changed, across pages,
//! and names EBS's error.

use crate::common::setup;
use emulator::fleet;

#[tokio::test]
async fn changed_blocks_are_counted_across_pages_and_errors_are_named() {
    let s = setup().await;
    let volume = fleet::detached_volume(&s.ec2).await.unwrap();
    let write = |blocks: Vec<(u64, &'static str, u64)>| {
        s.emulator
            .write_volume_blocks(emulator::ACCOUNT_ID, emulator::REGION, &volume, &blocks)
            .unwrap()
    };
    // 12,500 blocks: more than one page of 10,000.
    write((0..12_500).map(|i| (i, "text", i)).collect());
    let first = fleet::snapshot_by_hand(&s.ec2, &volume, &[("Name", "first")])
        .await
        .unwrap();
    // 300 blocks rewritten, 20 written for the first time.
    write((0..300).map(|i| (i * 7, "random", i)).collect());
    write((0..20).map(|i| (20_000 + i, "text", i)).collect());
    let second = fleet::snapshot_by_hand(&s.ec2, &volume, &[("Name", "second")])
        .await
        .unwrap();

    let full = function::ebs_direct::changed_blocks(&s.sdk, None, &first)
        .await
        .unwrap();
    assert_eq!(
        (full.blocks, full.new, full.freed),
        (12_500, 12_500, 0),
        "every block of a first snapshot, over two pages"
    );
    let changed = function::ebs_direct::changed_blocks(&s.sdk, Some(&first), &second)
        .await
        .unwrap();
    assert_eq!((changed.blocks, changed.new, changed.freed), (320, 20, 0));

    let other = fleet::detached_volume(&s.ec2).await.unwrap();
    let unrelated = fleet::snapshot_by_hand(&s.ec2, &other, &[("Name", "other")])
        .await
        .unwrap();
    let refused = function::ebs_direct::changed_blocks(&s.sdk, Some(&first), &unrelated)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "ValidationException", "{refused}");
}
