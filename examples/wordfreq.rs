//! wordfreq: prints the most frequent words of the files given on the command line.
//!
//! Usage: wordfreq [-n COUNT] FILE...
//! Build: rustc -O wordfreq.rs

use std::collections::HashMap;
use std::env;
use std::fs;
use std::process::ExitCode;

fn count_words(text: &str, counts: &mut HashMap<String, usize>) {
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| w.chars().count() > 2)
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = env::args().skip(1).collect();
    let mut top = 10;
    if args.len() >= 2 && args[0] == "-n" {
        top = match args[1].parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("wordfreq: -n needs a number, got {:?}", args[1]);
                return ExitCode::from(2);
            }
        };
        args.drain(..2);
    }
    if args.is_empty() {
        eprintln!("usage: wordfreq [-n COUNT] FILE...");
        return ExitCode::from(2);
    }
    let mut counts = HashMap::new();
    for path in &args {
        match fs::read_to_string(path) {
            Ok(text) => count_words(&text, &mut counts),
            Err(e) => eprintln!("wordfreq: skipping {path}: {e}"),
        }
    }
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (word, n) in sorted.into_iter().take(top) {
        println!("{n:>6}  {word}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_case_insensitively() {
        let mut c = HashMap::new();
        count_words("The cat and the other cat", &mut c);
        assert_eq!(c["cat"], 2);
        assert_eq!(c["the"], 2);
        assert!(!c.contains_key("an"));
    }
}
