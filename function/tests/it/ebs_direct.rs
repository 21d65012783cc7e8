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

    let (full, _) = function::ebs_direct::changed_blocks(&s.sdk, None, &first)
        .await
        .unwrap();
    assert_eq!(
        (full.blocks, full.new, full.freed),
        (12_500, 12_500, 0),
        "every block of a first snapshot, over two pages"
    );
    let (changed, samples) = function::ebs_direct::changed_blocks(&s.sdk, Some(&first), &second)
        .await
        .unwrap();
    assert_eq!((changed.blocks, changed.new, changed.freed), (320, 20, 0));
    // Up to 32 readable samples, spread over the changed blocks; each reads back as the data
    // written: random rewrites near 8 bits per byte, text well below.
    assert_eq!(samples.len(), 32);
    assert!(samples.windows(2).all(|w| w[0].index < w[1].index));
    let random = samples.iter().find(|s| s.index < 2_100).unwrap();
    let data = function::ebs_direct::block(&s.sdk, &second, random)
        .await
        .unwrap();
    assert_eq!(data.len(), 524_288);
    assert!(function::tripwire::bits_per_byte(&data) > 7.9);
    let text = samples.iter().find(|s| s.index >= 20_000).unwrap();
    let data = function::ebs_direct::block(&s.sdk, &second, text)
        .await
        .unwrap();
    assert!(function::tripwire::bits_per_byte(&data) < 6.0);
    let wrong = function::ebs_direct::Sample {
        index: random.index,
        token: "bm90LWEtdG9rZW4=".into(),
    };
    let refused = function::ebs_direct::block(&s.sdk, &second, &wrong)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "ValidationException", "{refused}");

    let other = fleet::detached_volume(&s.ec2).await.unwrap();
    let unrelated = fleet::snapshot_by_hand(&s.ec2, &other, &[("Name", "other")])
        .await
        .unwrap();
    let refused = function::ebs_direct::changed_blocks(&s.sdk, Some(&first), &unrelated)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "ValidationException", "{refused}");
}
