"""roscoe's tools for agents over the Model Context Protocol.

One implementation of the tools (`tools`) over a small backend interface (`backend`), served
two ways: `roscoe mcp` over stdio, running scripts in its own process through the run core
(`local`), and the runner's `/mcp` endpoint over streamable HTTP, through the execution
service's own run machinery. Only `server` (and what the HTTP endpoint mounts) imports the
MCP SDK, which is the optional extra `roscoe[mcp]`: nothing on the way to `roscoe --version`
or `roscoe run` imports this package.
"""
