"""`engram mcp`: an MCP server through which an agent searches, adds and corrects its own
memory. `memory` holds what the tools do (plain Python over the store and recall, no
protocol); `server` puts it on the official `mcp` SDK, which only `engram mcp` imports
(the SDK and pydantic cost ~300 ms, more than `engram list`'s whole start-up budget).
"""
