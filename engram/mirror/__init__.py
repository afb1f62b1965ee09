"""The MuninnDB mirror (docs/muninndb.md): memories shared across machines and agents.

- the outbox of memory changes and the mirror's bookkeeping tables live in the store
  (engram/store/outbox.py), filled in the same transaction as each change;
- `sync` + `reconcile`: the job that makes MuninnDB hold exactly the local active
  memories; `pull`: import a vault into the local store;
- `client`: MCP JSON-RPC over HTTP; `vault`: vault names, token, URL safety;
  `mapping`: an engram memory as MuninnDB fields;
- `recall`: MuninnDB as a recall source (`muninn_candidates`).
"""
