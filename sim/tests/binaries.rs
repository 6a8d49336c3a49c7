//! Both simulator binaries document their flags.

use std::process::Command;

fn help(bin: &str, args: &[&str]) -> String {
    let output = Command::new(bin).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "{bin} {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn twilio_sim_documents_its_subcommands_and_flags() {
    let bin = env!("CARGO_BIN_EXE_twilio-sim");
    let top = help(bin, &[]);
    for word in ["call", "load", "rest", "--log"] {
        assert!(top.contains(word), "{word} missing:\n{top}");
    }
    let call = help(bin, &["call"]);
    for flag in [
        "--url",
        "--auth-token",
        "--audio",
        "--dtmf",
        "--hang-up-after-ms",
    ] {
        assert!(call.contains(flag), "{flag} missing:\n{call}");
    }
    let load = help(bin, &["load"]);
    assert!(
        load.contains("--calls") && load.contains("--rate"),
        "{load}"
    );
    let rest = help(bin, &["rest"]);
    assert!(
        rest.contains("--listen") && rest.contains("--outcome"),
        "{rest}"
    );
}

#[test]
fn openai_sim_documents_its_flags() {
    let text = help(env!("CARGO_BIN_EXE_openai-sim"), &[]);
    for flag in [
        "--listen",
        "--mode",
        "--script",
        "--api-key",
        "--fault",
        "--audio-pace",
    ] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}
