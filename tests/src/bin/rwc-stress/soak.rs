//! Soaks: many create/call/drop cycles, then check that nothing was left behind and that
//! the node's memory stayed flat.

use std::time::{Duration, Instant};

use rwc_client::{Client, InstanceOptions, NetRef};
use rwc_tests::{guest_bytes, guests};

use crate::Failure;
use crate::node::Launcher;

/// RSS growth after the warm-up that is not taken for a leak.
const RSS_SLACK: u64 = 16 << 20;

/// `cycles` times: a guest counter as a netref, one call on it, drop it. Then the node's
/// export table for the connection holds nothing but what the soak still holds, the guest
/// holds no object, and the node's RSS is flat.
pub(crate) async fn netrefs(nodes: &Launcher, cycles: u64) -> Result<(), Failure> {
    let node = nodes.start(&[])?;
    let client = Client::connect(node.addr()).await?;
    let module = client.upload(&guest_bytes(guests::COUNTER)).await?;
    let instance = client
        .instantiate(&module, InstanceOptions::default())
        .await?;
    let baseline = client.info().await?.usage.this_connection.netrefs;
    let rss = node.track_rss(Duration::from_millis(200))?;
    let started = Instant::now();
    for i in 0..cycles {
        let counter: NetRef = instance.call("new_counter", (0i64,)).await?;
        let value: i64 = counter.call("incr", (1i64,)).await?;
        if value != 1 {
            return Err(format!("cycle {i}: incr gave {value}, not 1").into());
        }
        drop(counter);
    }
    let elapsed = started.elapsed();
    // Releases travel before the ping's reply: once it is back the node has taken them.
    client.ping().await?;
    let live: u32 = instance.call("live", ()).await?;
    let exported: u32 = instance.call("exported", ()).await?;
    let held = client.info().await?.usage.this_connection.netrefs;
    let imports = client.connection().stats().imports;
    let rss = rss.finish()?;
    drop((instance, module));
    client.ping().await?;
    let after = client.info().await?.usage.this_connection.netrefs;

    println!(
        "soak-netrefs: {cycles} create/call/drop cycles on one connection in {:.1} s ({:.0} cycles/s)",
        elapsed.as_secs_f64(),
        rate(cycles, elapsed)
    );
    println!("  node RSS: {}", rss.describe());
    println!(
        "  node export table for the connection: {held} netrefs with the module and instance \
         held ({baseline} before the cycles), {after} once they are dropped; guest objects \
         alive {live}, in the guest's table {exported}; client proxies {imports}"
    );
    if held != baseline || after != 0 || live != 0 || exported != 0 || imports != 2 {
        return Err("something the cycles created was left behind".into());
    }
    rss.check_flat(RSS_SLACK)
}

/// `cycles` times: instantiate, call, drop. The node is given 64 instance slots, so a
/// slot not returned to the pool would make instantiation fail long before the end.
pub(crate) async fn instances(nodes: &Launcher, cycles: u64) -> Result<(), Failure> {
    let node = nodes.start(&["--max-instances", "64"])?;
    let client = Client::connect(node.addr()).await?;
    let module = client.upload(&guest_bytes(guests::COUNTER)).await?;
    let rss = node.track_rss(Duration::from_millis(200))?;
    let started = Instant::now();
    for i in 0..cycles {
        let instance = client
            .instantiate(&module, InstanceOptions::default())
            .await
            .map_err(|e| format!("cycle {i}: {e}"))?;
        let live: i32 = instance.call("live_counters", ()).await?;
        if live != 0 {
            return Err(format!("cycle {i}: a fresh instance has {live} counters").into());
        }
        drop(instance);
    }
    let elapsed = started.elapsed();
    client.ping().await?;
    // Dropped instances are freed by their actors as they wind down.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut live = client.info().await?.live_instances;
    while live > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        live = client.info().await?.live_instances;
    }
    let rss = rss.finish()?;
    let netrefs = client.info().await?.usage.this_connection.netrefs;
    println!(
        "soak-instances: {cycles} instantiate/call/drop cycles in {:.1} s ({:.0} cycles/s), \
         with 64 instance slots",
        elapsed.as_secs_f64(),
        rate(cycles, elapsed)
    );
    println!("  node RSS: {}", rss.describe());
    println!("  live instances at the end: {live}; netrefs held: {netrefs} (the module)");
    if live != 0 || netrefs != 1 {
        return Err("instances were left behind".into());
    }
    rss.check_flat(RSS_SLACK)
}

/// Events per second.
pub(crate) fn rate(n: u64, elapsed: Duration) -> f64 {
    // Display only.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n / elapsed.as_secs_f64().max(1e-9)
}
