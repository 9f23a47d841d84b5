/** Transport (PROTOCOL §7): https/wss only but to loopback or by explicit opt-in, a timeout on every request, §4 errors as SealpostError. */
import { SealpostError, type ErrorCode } from "./errors.js";

/** How a client reaches its server. */
export interface TransportOptions {
  /** Allow plain http:// and ws:// to a server that is not loopback: anyone on the network can then read and change the traffic. */
  insecureHttp?: boolean;
  /** Give up on a request after this many ms (default 30 000). */
  requestTimeoutMs?: number;
  /** Give up connecting a stream after this many ms (default 10 000). */
  connectTimeoutMs?: number;
  fetch?: typeof fetch;
}

/** Whether a URL host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The server's origin, checked against §7: `insecure_transport` for http:// off loopback without the opt-in. */
export function checkServer(server: string, insecureHttp = false): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new SealpostError("invalid_input", `not a URL: ${server}`);
  }
  if (url.protocol === "https:") return url.origin;
  if (url.protocol === "http:" && (isLoopback(url.hostname) || insecureHttp)) return url.origin;
  throw new SealpostError(
    "insecure_transport",
    `refusing to send credentials to ${url.origin} over plain HTTP: use https://, or opt in with insecureHttp: true for a network you trust`,
  );
}

/** The stream's URL of a checked origin: wss:// for https://, ws:// for (allowed) http://. */
export function streamUrl(origin: string): string {
  return origin.replace(/^http/, "ws") + "/v1/stream";
}

/** One HTTP request to the API. */
export interface Request {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  body?: unknown;
  token?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** The HTTP layer of one client. */
export interface Http {
  origin: string;
  call<T>(request: Request): Promise<T>;
}

/** An Http for `origin` (already checked). */
export function http(origin: string, options: TransportOptions): Http {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const timeoutMs = options.requestTimeoutMs ?? 30000;
  return {
    origin,
    async call<T>(r: Request): Promise<T> {
      // A timer of our own (AbortSignal.timeout's does not keep Node's event loop alive), cleared once the body is read.
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), timeoutMs);
      const signal = r.signal ? AbortSignal.any([r.signal, timeout.signal]) : timeout.signal;
      const headers: Record<string, string> = {};
      if (r.body !== undefined) headers["content-type"] = "application/json";
      if (r.token !== undefined) headers.authorization = `Bearer ${r.token}`;
      let response: Response;
      let text: string;
      try {
        response = await doFetch(origin + r.path, {
          method: r.method,
          headers,
          body: r.body === undefined ? null : JSON.stringify(r.body),
          signal,
          redirect: "error",
        });
        text = await response.text();
      } catch (e) {
        if (timeout.signal.aborted) {
          throw new SealpostError("timeout", `no answer from ${origin} within ${timeoutMs} ms`);
        }
        if (r.signal?.aborted) throw new SealpostError("aborted", "the request was aborted");
        throw new SealpostError("unreachable", `cannot reach the server at ${origin}`, {
          cause: e,
        });
      } finally {
        clearTimeout(timer);
      }
      if (response.ok) {
        if (text === "") return undefined as T;
        try {
          return JSON.parse(text) as T;
        } catch {
          throw new SealpostError(
            "protocol",
            `the server answered ${r.method} ${r.path} with something that is not JSON`,
          );
        }
      }
      let code: ErrorCode = "protocol";
      let message = `the server answered ${response.status}`;
      let field: string | undefined;
      try {
        const e = (
          JSON.parse(text) as { error?: { code?: string; message?: string; field?: string } }
        ).error;
        if (typeof e?.code === "string") code = e.code as ErrorCode;
        if (typeof e?.message === "string") message = e.message;
        if (typeof e?.field === "string") field = e.field;
      } catch {
        // Not the error shape: keep the status.
      }
      const retry = response.headers.get("retry-after");
      const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : undefined;
      throw new SealpostError(code, message, { status: response.status, field, retryAfter });
    },
  };
}
