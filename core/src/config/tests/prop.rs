//! Property tests: random valid configurations survive every form
//! (TOML, environment, builder) unchanged, and random text in a file or a
//! variable is refused with a message, never a panic.

use std::time::Duration;

use proptest::prelude::*;

use crate::config::keys::KEYS;
use crate::config::*;

/// Configurations that satisfy every rule, built through the builder.
fn valid_config() -> impl Strategy<Value = EngineConfig> {
    let cpus = configured_cpus();
    let engine =
        (1..=cpus.min(64), any::<bool>(), any::<bool>(), 0..3u8, any::<u32>(), 0..=1_000_000u32, 1..=1_000_000u64);
    let uring = (3..=15u32, any::<[bool; 4]>(), 0..cpus, 1..=60_000u32, 0..=16_384u32, 0..=15u32, 512..=16usize << 20);
    let rest = (
        0..=1usize << 30,
        1..=4096u32,
        prop::option::of((any::<[u8; 4]>(), any::<u16>())),
        "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
    );
    let flow =
        (12..=30u32, 1..=1usize << 30, 0..=1_000_000u64, prop::collection::vec((any::<bool>(), 1..=u16::MAX), 0..4));
    (engine, uring, rest, flow).prop_map(move |(engine, uring, rest, flow)| {
        let (threads, invoker, pinned, idle, spins, yields, park) = engine;
        let (entries_log2, [single, defer, coop, sqpoll], sq_core, sq_idle, registered, provided_log2, buffer) = uring;
        let (zc, batch, listen, host) = rest;
        let (ring_log2, max_msg, spin, peers) = flow;
        let threads = if invoker { 1 } else { threads };
        let entries = 1u32 << entries_log2;
        let b = EngineConfig::builder()
            .threads(threads)
            .cores(if pinned && !invoker { (0..threads).rev().collect() } else { Vec::new() })
            .mode(if invoker { ThreadingMode::Invoker } else { ThreadingMode::Dedicated })
            .idle(match idle {
                0 => IdleStrategy::Spin,
                1 => IdleStrategy::Park,
                _ => IdleStrategy::Backoff { spins: 0, yields: 0, park: Duration::from_micros(1) },
            })
            .backoff_spins(spins % 100_000_001)
            .backoff_yields(yields)
            .backoff_park_us(park)
            .entries(entries)
            .sqpoll(sqpoll)
            .single_issuer(single || defer)
            .defer_taskrun(defer && !sqpoll)
            .coop_taskrun(coop && !sqpoll)
            .sqpoll_core(if sqpoll && coop { Some(sq_core) } else { None })
            .sqpoll_idle_ms(sq_idle)
            .registered_buffers(registered)
            .provided_buffers(1 << provided_log2)
            .buffer_size(buffer)
            .send_zc_threshold(zc)
            .batch(batch.min(entries))
            .listen(listen.map(|(ip, port)| format!("{}:{port}", std::net::Ipv4Addr::from(ip))).as_deref())
            .peers(peers.iter().enumerate().map(|(i, (named, port))| {
                if *named {
                    format!("p{i}@{host}:{port}")
                } else {
                    format!("h{i}.{host}:{port}")
                }
            }))
            .ring_bytes(1 << ring_log2)
            .max_msg(max_msg)
            .spin_us(spin);
        b.build().unwrap_or_else(|e| panic!("the strategy made an invalid config: {e}"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 128 }, ..ProptestConfig::default() })]

    #[test]
    fn configs_round_trip_through_all_forms(config in valid_config()) {
        prop_assert_eq!(&EngineConfig::from_toml_str(&config.to_toml_string()).unwrap(), &config);
        let mut from_env = EngineConfig::default();
        from_env.apply_env(config.to_env_vars().into_iter()).unwrap();
        prop_assert_eq!(&from_env, &config);
        prop_assert_eq!(&config.to_builder().build().unwrap(), &config);
    }

    #[test]
    fn garbage_toml_never_panics(text in "\\PC{0,200}") {
        let _ = EngineConfig::from_toml_str(&text);
    }

    #[test]
    fn near_miss_toml_never_panics(
        lines in prop::collection::vec((0..KEYS.len(), "[\\[\\]a-z_.=\" ,0-9-]{0,12}|\\PC{0,12}"), 0..8)
    ) {
        let text: String = lines.iter().map(|(key, value)| format!("{} = {value}\n", KEYS[*key].path)).collect();
        if let Err(err) = EngineConfig::from_toml_str(&text) {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn garbage_env_never_panics(
        vars in prop::collection::vec((prop_oneof![(0..KEYS.len()).prop_map(|i| KEYS[i].env_name()), "RINGFLOW_[A-Z_]{0,16}"], "\\PC{0,24}"), 0..6)
    ) {
        let mut config = EngineConfig::default();
        if config.apply_env(vars.into_iter()).is_err() {
            prop_assert_eq!(config, EngineConfig::default());
        }
    }
}

#[test]
fn hostile_nesting_is_refused_without_exhausting_the_stack() {
    let deep = 100_000;
    for text in [
        format!("engine.cores = {}", "[".repeat(deep)),
        format!("engine.cores = {}{}", "[".repeat(deep), "]".repeat(deep)),
        format!("engine = {}", "{ a = ".repeat(deep)),
        format!("{}b = 1", "a.".repeat(deep)),
        format!("[{}b]", "a.".repeat(deep)),
        format!("engine.{}b = 1", "backoff.".repeat(deep)),
    ] {
        assert!(EngineConfig::from_toml_str(&text).is_err());
    }
}
