import type { TableId } from "./types.ts";
import paymentsFields from "../../docs/bigquery/payments.json" with { type: "json" };
import eventsFields from "../../docs/bigquery/payment_events.json" with { type: "json" };
import operationsFields from "../../docs/bigquery/provider_operations.json" with { type: "json" };
import invoicesFields from "../../docs/bigquery/invoices.json" with { type: "json" };
import invoiceDepositsFields from "../../docs/bigquery/invoice_deposits.json" with { type: "json" };

/** A column as BigQuery's REST API and `bq mk --schema` describe it. */
export interface FieldSchema {
  name: string;
  type: string;
  mode: string;
  description: string;
}

export interface TableSchema {
  id: TableId;
  description: string;
  fields: FieldSchema[];
  /** Day partitions on this TIMESTAMP column keep dashboard scans to the dates asked for. */
  partitionField: string;
  /** Clustering by shop makes per-shop dashboards (Metabase embeds filtered by shop) cheap. */
  clusterFields: string[];
}

/** The tables, their columns kept in docs/bigquery/*.json so operators and `bq setup` read the same thing. */
export const TABLES: readonly TableSchema[] = [
  {
    id: "payments",
    description: "One row per exported state of a payment; read payments_latest for the current state.",
    fields: paymentsFields,
    partitionField: "created_at",
    clusterFields: ["shop_id"],
  },
  {
    id: "payment_events",
    description: "One row per payment event and postback attempt; read payment_events_unique to drop re-sent rows.",
    fields: eventsFields,
    partitionField: "at",
    clusterFields: ["shop_id", "payment_id"],
  },
  {
    id: "provider_operations",
    description: "One row per provider call (the operation log); read provider_operations_unique to drop re-sent rows.",
    fields: operationsFields,
    partitionField: "at",
    clusterFields: ["shop_id", "account_id"],
  },
  {
    id: "invoices",
    description: "One row per exported state of a crypto invoice; read invoices_latest for the current state.",
    fields: invoicesFields,
    partitionField: "created_at",
    clusterFields: ["shop_id"],
  },
  {
    id: "invoice_deposits",
    description: "One row per state of a deposit to an invoice; read invoice_deposits_latest for the current one.",
    fields: invoiceDepositsFields,
    partitionField: "seen_at",
    clusterFields: ["shop_id", "invoice_id"],
  },
];

export interface ViewSchema {
  id: string;
  description: string;
  query: (project: string, dataset: string) => string;
}

/**
 * Streaming inserts deduplicate by insertId only for about a minute, and the
 * payments table gets a row per state, so readers go through these views.
 * Project and dataset are validated in lib/config.ts before they get here.
 */
export const VIEWS: readonly ViewSchema[] = [
  {
    id: "payments_latest",
    description: "The current state of each payment.",
    query: (project, dataset) =>
      `SELECT * FROM \`${project}.${dataset}.payments\` WHERE TRUE ` +
      `QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1`,
  },
  {
    id: "payment_events_unique",
    description: "Each payment event and postback attempt once.",
    query: (project, dataset) =>
      `SELECT * FROM \`${project}.${dataset}.payment_events\` WHERE TRUE ` +
      `QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY activity_seq) = 1`,
  },
  {
    id: "provider_operations_unique",
    description: "Each provider call once.",
    query: (project, dataset) =>
      `SELECT * FROM \`${project}.${dataset}.provider_operations\` WHERE TRUE ` +
      `QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY activity_seq) = 1`,
  },
  {
    id: "invoices_latest",
    description: "The current state of each crypto invoice.",
    query: (project, dataset) =>
      `SELECT * FROM \`${project}.${dataset}.invoices\` WHERE TRUE ` +
      `QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1`,
  },
  {
    id: "invoice_deposits_latest",
    description: "The latest state of each deposit to an invoice.",
    query: (project, dataset) =>
      `SELECT * FROM \`${project}.${dataset}.invoice_deposits\` WHERE TRUE ` +
      `QUALIFY ROW_NUMBER() OVER (PARTITION BY deposit_id ORDER BY updated_at DESC) = 1`,
  },
];
