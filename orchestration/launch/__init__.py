"""Starting and watching runs: request checks and the in-process runner, the GraphQL service the page
uses (progress, ETA), disk-space checks, progress events, `vup serve`/`vup dev`, console logs."""
