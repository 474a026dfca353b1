//! Remote commands: a registry of named commands every process answers (`help` lists them), and the
//! argument rules of knobs. An integer knob answers its value with no argument and takes a number or
//! `DEFAULT`; a boolean takes `true|false`. Replies are short text: `OK`, the value, or `ERR: reason`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type CommandFuture = Pin<Box<dyn Future<Output = String> + Send>>;
type Handler = Arc<dyn Fn(Vec<String>) -> CommandFuture + Send + Sync>;

#[derive(Clone, Default)]
pub struct CommandRegistry {
    commands: BTreeMap<String, (String, Handler)>,
}

impl CommandRegistry {
    pub fn register<F, Fut>(&mut self, name: &str, help: &str, handler: F) -> &mut Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |args| Box::pin(handler(args)));
        self.commands.insert(name.to_string(), (help.to_string(), handler));
        self
    }

    /// The text `help` answers: every command and what it does.
    pub fn help(&self) -> String {
        let width = self.commands.keys().map(String::len).max().unwrap_or(0).max(4);
        let mut text = format!("{:<width$}  list the commands\n", "help");
        for (name, (help, _)) in &self.commands {
            text.push_str(&format!("{name:<width$}  {help}\n"));
        }
        text
    }

    pub async fn run(&self, name: &str, args: Vec<String>) -> String {
        if name == "help" {
            return self.help();
        }
        match self.commands.get(name) {
            Some((_, handler)) => handler(args).await,
            None => format!("ERR: unknown command '{name}'"),
        }
    }
}

/// What to do with an integer knob: show it, or set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobChange<T> {
    Show,
    Set(T),
}

/// `[]` shows; `DEFAULT` sets `default`; a number sets it.
pub fn int_knob(args: &[String], default: u64) -> Result<KnobChange<u64>, String> {
    match args {
        [] => Ok(KnobChange::Show),
        [value] if value.eq_ignore_ascii_case("default") => Ok(KnobChange::Set(default)),
        [value] => value
            .parse()
            .map(KnobChange::Set)
            .map_err(|_| format!("ERR: '{value}' is not a number (or DEFAULT)")),
        _ => Err("ERR: takes at most one argument".into()),
    }
}

/// `[]` shows; `true` or `false` sets.
pub fn bool_knob(args: &[String]) -> Result<KnobChange<bool>, String> {
    match args {
        [] => Ok(KnobChange::Show),
        [value] => match value.to_ascii_lowercase().as_str() {
            "true" => Ok(KnobChange::Set(true)),
            "false" => Ok(KnobChange::Set(false)),
            _ => Err(format!("ERR: '{value}' is not true or false")),
        },
        _ => Err("ERR: takes at most one argument".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn integer_knobs_show_set_and_reset() {
        assert_eq!(int_knob(&args(&[]), 7), Ok(KnobChange::Show));
        assert_eq!(int_knob(&args(&["10"]), 7), Ok(KnobChange::Set(10)));
        assert_eq!(int_knob(&args(&["DEFAULT"]), 7), Ok(KnobChange::Set(7)));
        assert!(int_knob(&args(&["ten"]), 7).unwrap_err().starts_with("ERR: "));
        assert!(int_knob(&args(&["1", "2"]), 7).is_err());
    }

    #[test]
    fn boolean_knobs_take_true_or_false() {
        assert_eq!(bool_knob(&args(&["TRUE"])), Ok(KnobChange::Set(true)));
        assert_eq!(bool_knob(&args(&[])), Ok(KnobChange::Show));
        assert!(bool_knob(&args(&["yes"])).is_err());
    }

    #[tokio::test]
    async fn unknown_commands_are_named_and_help_lists_the_rest() {
        let mut registry = CommandRegistry::default();
        registry.register("server-info", "version and uptime", |_| async { "v1".to_string() });
        assert_eq!(registry.run("server-info", vec![]).await, "v1");
        assert_eq!(registry.run("nope", vec![]).await, "ERR: unknown command 'nope'");
        let help = registry.run("help", vec![]).await;
        assert!(help.contains("server-info  version and uptime"), "{help}");
    }
}
