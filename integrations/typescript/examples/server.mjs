import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { apiKeyAuth, Verifier } from "mcp-key-verifier";
import { z } from "zod";

const app = createMcpExpressApp();
// Any valid key may call every tool. For per-tool permissions add `toolPermissions: true` and
// give keys `tools:call` or `tools:call:add` (`mcp-key-manager grant ID tools:call:add`).
app.use("/mcp", apiKeyAuth({ verifier: Verifier.fromFile(process.env.MCP_VERIFIER ?? "verifier.json") }));
app.post("/mcp", async (req, res) => {
  const server = new McpServer({ name: "demo", version: "1.0.0" });
  server.registerTool("add", { inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
    content: [{ type: "text", text: String(a + b) }],
  }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => transport.close());
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1");
