//! Remote commands from the shell: to the meta servers, to every replica server the meta knows, or
//! to a given list; one line per process, then how many succeeded and failed.

use super::commands::{TargetArgs, TargetKind};
use super::Shell;
use aerie_common::NodeAddr;
use aerie_proto::admin::RemoteCommand;

impl Shell {
    fn targets(&self, targets: &TargetArgs) -> Result<Vec<(&'static str, NodeAddr)>, String> {
        if let Some(list) = &targets.list {
            let nodes = NodeAddr::parse_list(list).map_err(|e| e.to_string())?;
            return Ok(nodes.into_iter().map(|n| ("server", n)).collect());
        }
        let mut found = Vec::new();
        if matches!(targets.kind, TargetKind::MetaServer | TargetKind::All) {
            found.extend(self.client.meta_servers().iter().map(|m| ("meta-server", *m)));
        }
        if matches!(targets.kind, TargetKind::ReplicaServer | TargetKind::All) {
            let nodes = self.block(self.client.list_nodes())?;
            found.extend(nodes.into_iter().map(|n| ("replica-server", n.address)));
        }
        Ok(found)
    }

    pub(super) fn remote_command(
        &mut self,
        targets: &TargetArgs,
        name: &str,
        args: &[String],
    ) -> Result<String, String> {
        let targets = self.targets(targets)?;
        let request = RemoteCommand {
            name: name.to_string(),
            args: args.to_vec(),
        };
        let client = self.client.clone();
        let replies = self.runtime.block_on(futures::future::join_all(
            targets.iter().map(|(_, node)| client.call_node(*node, request.clone())),
        ));
        let (mut succeeded, mut failed) = (0, 0);
        let mut text = format!("COMMAND: {name} {}\n\n", args.join(" ")).replace(" \n", "\n");
        for ((kind, node), reply) in targets.iter().zip(replies) {
            match reply {
                Ok(reply) if !reply.starts_with("ERR:") => {
                    succeeded += 1;
                    let reply = reply.trim_end();
                    let separator = if reply.contains('\n') { "\n" } else { " " };
                    text.push_str(&format!("CALL [{kind}] [{node}] succeed:{separator}{reply}\n"));
                }
                Ok(reply) => {
                    failed += 1;
                    text.push_str(&format!("CALL [{kind}] [{node}] failed: {}\n", reply.trim_end()));
                }
                Err(e) => {
                    failed += 1;
                    text.push_str(&format!("CALL [{kind}] [{node}] failed: {e}\n"));
                }
            }
        }
        text.push_str(&format!("\nSucceed count: {succeeded}\nFailed count: {failed}\n"));
        if failed > 0 {
            // The report is output either way; the error makes the exit status say so.
            print!("{text}");
            return Err(format!("{failed} of {} processes failed", succeeded + failed));
        }
        Ok(text)
    }
}
