"""The MuninnDB mirror (docs/muninndb.md): memories shared across machines and agents.

- `outbox`: the queue of memory changes (filled by engram/store/memories.py in the same
  transaction as each change) and the mirror's bookkeeping tables;
- `sync` + `reconcile`: the job that makes MuninnDB hold exactly the local active
  memories; `pull`: import a vault into the local store;
- `client`: MCP JSON-RPC over HTTP; `vault`: vault names, token, URL safety;
  `mapping`: an engram memory as MuninnDB fields;
- `recall`: MuninnDB as a recall source (`muninn_candidates`).
"""
