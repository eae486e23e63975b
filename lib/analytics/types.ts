import type { EmailPolicy } from "../config.ts";

/** The tables the export writes (views are defined in schema.ts). */
export type TableId = "payments" | "payment_events" | "provider_operations" | "invoices" | "invoice_deposits";

/** One row for BigQuery's streaming insert; `insertId` makes a re-sent row a no-op. */
export interface InsertRow {
  insertId: string;
  json: Record<string, string | number | boolean | null>;
}

/** Where rows go. The real one is BigQuerySink; a batch counts only once every row was accepted. */
export interface AnalyticsSink {
  /** "project.dataset", for logs and the console. */
  readonly target: string;
  /** Streams rows into one table; resolves only when BigQuery accepted every row. */
  insert(table: TableId, rows: InsertRow[]): Promise<void>;
  /** Creates the dataset, tables and views when missing; returns one line per object. */
  setup(): Promise<string[]>;
}

/** How the `email` column is filled. */
export interface EmailOptions {
  policy: EmailPolicy;
  /** HMAC-SHA-256 key, present when `policy` is "hash". */
  hashKey?: CryptoKey;
}

/** What the export job needs, built once from the config (AppContext.analytics). */
export interface Analytics {
  sink: AnalyticsSink;
  email: EmailOptions;
  batchSize: number;
  intervalMs: number;
  settleMs: number;
  /** How long a run may hold the job before another worker may take it over. */
  leaseMs: number;
}
