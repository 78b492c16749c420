//! The README's hello world is `examples/hello.rs`, whole: a newcomer who
//! pastes it gets the program `.ci/run` runs, so neither can rot alone.
//! (The README is also compiled as doctests: see `src/lib.rs`.)

#[test]
fn readme_hello_world_is_examples_hello_rs() {
    let readme = include_str!("../README.md");
    let hello = include_str!("../examples/hello.rs");
    let block = format!("```rust,no_run\n{hello}```\n");
    assert!(
        readme.contains(&block),
        "README.md's hello world differs from examples/hello.rs: paste the file into the README's rust,no_run block"
    );
}

#[test]
fn readme_starts_with_the_two_commands() {
    let readme = include_str!("../README.md");
    let first_block = readme.split("```sh\n").nth(1).and_then(|b| b.split("```").next());
    assert_eq!(
        first_block,
        Some("cargo run --release -- bench\ncargo test --workspace --no-default-features\n"),
        "the README's first commands are the main job and the test command .ci/run runs"
    );
}

#[test]
fn readme_points_only_inside_the_repository() {
    let readme = include_str!("../README.md");
    assert!(!readme.contains("../"), "the README points outside the repository");
    // Every relative link names a file of the repository.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for link in readme.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
        if !link.contains("://") {
            assert!(root.join(link).exists(), "the README links to {link}, which is not in the repository");
        }
    }
}

#[test]
fn readme_names_the_declared_rust_version() {
    let readme = include_str!("../README.md");
    let declared = format!("`rust-version` in `Cargo.toml` ({})", env!("CARGO_PKG_RUST_VERSION"));
    assert!(readme.contains(&declared), "the README's supported Rust version differs from Cargo.toml's");
}
