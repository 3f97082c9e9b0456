/**
 * The connection settings table: how to reach NATS and authenticate (shared by start, publish and
 * watch), the client variant with `--server URL`, and the checks across them.
 *
 * @module
 */
import { z } from "zod";
import { option, type Resolved } from "./settings.ts";

const NonEmpty = z.string().min(1, "expected a non-empty string");
const NatsUrl = z.string().regex(
  /^(nats|tls|ws|wss):\/\/[^\s/,]+(:\d+)?\/?(,\s*(nats|tls|ws|wss):\/\/[^\s/,]+(:\d+)?\/?)*$/,
  "expected a nats://, tls://, ws:// or wss:// URL such as nats://127.0.0.1:4222, or a " +
    "comma-separated list of them (the servers of one cluster)",
);

/** Group of the connection settings in usage texts. */
export const CONNECTION = "connection";

/** How to reach NATS and authenticate (shared by start, publish and watch). */
export const NATS_SETTINGS = {
  url: option({
    flag: "nats-url",
    env: "NATS_URL",
    arg: "URL",
    group: CONNECTION,
    schema: NatsUrl,
    help: "nats://, tls://, ws:// or wss://; none = start a local nats-server",
  }),
  creds: option({
    flag: "creds",
    env: "NATS_CREDS",
    arg: "FILE",
    group: CONNECTION,
    schema: NonEmpty,
    help: "credentials file (JWT + nkey)",
  }),
  user: option({
    flag: "user",
    env: "NATS_USER",
    arg: "U",
    group: CONNECTION,
    schema: NonEmpty,
    help: "user name, with --password",
  }),
  password: option({
    flag: "password",
    env: "NATS_PASSWORD",
    arg: "P",
    group: CONNECTION,
    schema: z.string(),
    help: "password, with --user",
  }),
  token: option({
    flag: "token",
    env: "NATS_TOKEN",
    arg: "T",
    group: CONNECTION,
    schema: NonEmpty,
    help: "authentication token",
  }),
  tlsCa: option({
    flag: "tls-ca",
    env: "NATS_CA",
    arg: "FILE",
    group: CONNECTION,
    schema: NonEmpty,
    help: "CA certificate (PEM)",
  }),
  tlsCert: option({
    flag: "tls-cert",
    env: "NATS_CERT",
    arg: "FILE",
    group: CONNECTION,
    schema: NonEmpty,
    help: "client certificate (PEM), with --tls-key",
  }),
  tlsKey: option({
    flag: "tls-key",
    env: "NATS_KEY",
    arg: "FILE",
    group: CONNECTION,
    schema: NonEmpty,
    help: "client key (PEM), with --tls-cert",
  }),
} as const;

/** How to reach NATS and authenticate; `url` undefined = start a local nats-server. */
export type NatsSettings = Resolved<typeof NATS_SETTINGS>;

/** Where a client command (publish, watch) connects: {@link NATS_SETTINGS} with `--server URL`. */
export const NATS_CLIENT_SETTINGS = {
  ...NATS_SETTINGS,
  url: {
    ...NATS_SETTINGS.url,
    flag: "server",
    default: "nats://127.0.0.1:4222",
    help: "NATS server: nats://, tls://, ws:// or wss://",
  },
} as const;

/** Checks across the connection settings: one line per problem. */
export function natsErrors(nats: NatsSettings): string[] {
  const errors: string[] = [];
  if (nats.user !== undefined && nats.password === undefined) {
    errors.push("NATS_USER/--user is set but NATS_PASSWORD/--password is not: expected both");
  }
  if ((nats.tlsCert === undefined) !== (nats.tlsKey === undefined)) {
    errors.push("expected NATS_CERT/--tls-cert and NATS_KEY/--tls-key together, found only one");
  }
  return errors;
}
