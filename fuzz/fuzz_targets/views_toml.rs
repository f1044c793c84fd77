#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(
    init: {
        // Some dependencies panic and catch it themselves (pdf-extract inside
        // peros-indexer); libfuzzer-sys's hook would abort on those. A panic that escapes
        // the target still aborts: libfuzzer-sys checks for it after every input.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| targets::views_toml(data)
);
