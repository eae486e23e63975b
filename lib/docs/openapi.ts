import { z } from "zod";
import { initPaymentSchema } from "../payments/schema.ts";
import {
  AccountListResponse,
  AccountResponse,
  OperationListResponse,
  OptionsResponse,
  RoutingResponse,
} from "../accounts/api_schemas.ts";
import { NewAccountSchema } from "../accounts/mod.ts";
import { ShopRoutingSchema } from "../accounts/routing.ts";
import {
  API_ERRORS,
  type ApiErrorCode,
  ErrorResponse,
  InitPaymentResponse,
  PaymentResponse,
  PaymentStatusSchema,
  PaymentView,
  PostbackBody,
  ProviderWebhookResponse,
} from "../payments/api_schemas.ts";
import { RefundWebhookBody, SIGNATURE_HEADER, WebhookBody } from "../providers/bansky_wire.ts";
import {
  RefundListResponse,
  RefundPostbackBody,
  RefundResponse,
  RefundStatusSchema,
  RefundView,
} from "../refunds/api_schemas.ts";
import { refundRequestSchema } from "../refunds/schema.ts";
import { checkoutSessionSchema } from "../checkout/schema.ts";
import * as checkoutSchemas from "../checkout/api_schemas.ts";
import { checkoutPaths } from "./openapi_checkout.ts";
import { formRequestSchema } from "../forms/schema.ts";
import { FormCreatedResponse, FormListResponse, FormResponse, FormView } from "../forms/api_schemas.ts";
import { createInvoiceSchema } from "../invoices/schema.ts";
import { InvoicePostbackBody, InvoiceResponse, InvoiceStatusSchema, InvoiceView } from "../invoices/api_schemas.ts";
import { ChainNotice } from "../invoices/chain_wire.ts";
import { cryptoOptions } from "../invoices/coins.ts";
import { INVOICE_POSTBACK_TYPES } from "../invoices/status.ts";

/**
 * The OpenAPI 3.1 document of the shop's API, generated from the zod schemas
 * the handlers validate with (requests) and lib/payments/api_schemas.ts
 * (answers), so it cannot drift from the code. Served at /openapi.json and
 * rendered at /docs/api-reference.
 */

export type JsonSchema = { [key: string]: unknown };

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

export interface Parameter {
  name: string;
  in: "query" | "path" | "header";
  required: boolean;
  description: string;
  schema: JsonSchema;
}

export interface MediaType {
  schema: JsonSchema;
  example?: unknown;
  examples?: Record<string, { summary?: string; value: unknown }>;
}

export interface ResponseObject {
  description: string;
  headers?: Record<string, { description: string; schema: JsonSchema; required?: boolean }>;
  content?: Record<string, MediaType>;
}

export interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { required: boolean; description?: string; content: Record<string, MediaType> };
  responses: Record<string, ResponseObject>;
  /** Who calls it: shops, buyers' browsers, or the provider. */
  "x-audience": "shop" | "buyer" | "provider" | "operator";
}

export type PathItem = Partial<Record<HttpMethod, Operation>>;

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: {
    title: string;
    version: string;
    description: string;
    license: { name: string; identifier?: string; url?: string };
  };
  servers: { url: string }[];
  tags: { name: string; description: string }[];
  paths: Record<string, PathItem>;
  webhooks: Record<string, PathItem>;
  components: {
    schemas: Record<string, JsonSchema>;
    securitySchemes: Record<string, { type: "http"; scheme: "bearer"; bearerFormat: string; description: string }>;
  };
}

export interface OpenApiOptions {
  /** `MAX_AMOUNT`: the largest amount init-payment accepts. */
  maxAmount: number;
  /** Where the API is served, e.g. https://pay.example.com. */
  publicBaseUrl: string;
}

export const API_VERSION = "1.0.0";
export const HTTP_METHODS: readonly HttpMethod[] = ["get", "post", "put", "patch", "delete"];

export const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
export const json = (schema: JsonSchema, extra: Omit<MediaType, "schema"> = {}) => ({
  "application/json": { schema, ...extra },
});
const retryAfter = {
  "Retry-After": { description: "Retry not before this many seconds.", schema: { type: "integer", minimum: 0 } },
};

/** Turns a registry of zod schemas into component schemas, without the per-schema `$schema`/`$id` noise. */
function componentSchemas(
  entries: Record<string, z.ZodType>,
  io: "input" | "output",
): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(entries)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, {
    io,
    target: "draft-2020-12",
    uri: (id) => `#/components/schemas/${id}`,
    override: (ctx) => {
      // The date-time regex zod adds is an implementation detail; `format` says it.
      if (ctx.jsonSchema.format === "date-time") delete ctx.jsonSchema.pattern;
      // Answers may gain fields (the changelog promises it), so generated clients must not refuse unknown ones.
      if (io === "output" && ctx.jsonSchema.additionalProperties === false) delete ctx.jsonSchema.additionalProperties;
    },
  });
  const schemas: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(out.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema as JsonSchema;
    schemas[id] = rest;
  }
  return schemas;
}

/** What the API really answers for each code, so a client's error handling can be written against the examples. */
const EXAMPLE_MESSAGES: Partial<Record<ApiErrorCode, string>> = {
  invalid_request: "The request is invalid.",
  unauthorized: "Missing, unknown or revoked API key.",
  shop_disabled: "This shop is disabled.",
  not_found: "Unknown payment.",
  body_unreadable: "The body could not be read.",
  method_not_allowed: "TRACE is not served here.",
  request_timeout: "The body must arrive within 10 seconds.",
  body_too_large: "The body must be at most 16 KiB.",
  unsupported_media_type: "Send the body as application/json.",
  payment_not_cancellable: "Only a pending payment can be cancelled; this one is succeeded.",
  payment_not_refundable: "A pending payment cannot be refunded.",
  idempotency_mismatch: "This id was already used for a payment with different details.",
  no_route: "This shop has no route for crypto payments in EUR.",
  amount_not_accepted: "The amount is invalid.",
  invoice_not_cancellable: "A payment_accepted invoice cannot be cancelled.",
  invoices_unavailable: "Crypto invoices are not set up on this server.",
  dns_timeout: "The lookup of shop.example got no answer in time; try again shortly.",
  refund_exceeds_payment: "Only 6.50 EUR of this payment is left to refund (pending refunds count).",
  rate_limited: "Too many requests; retry in 12 s.",
  internal_error: "Something went wrong on our side. It has been logged.",
  provider_error: "The payment provider failed.",
  provider_timeout: "The payment provider did not answer in time.",
  invalid_webhook: "Webhook reference does not match the payment.",
  conflict: "The payment is busy; retry.",
  status_not_confirmed: "The provider does not confirm this status yet; send the webhook again later.",
  overloaded: "Too many webhooks at once; retry.",
};

/** One response per HTTP status for these error codes, each code with an example body. */
export function errorResponses(codes: readonly ApiErrorCode[]): Record<string, ResponseObject> {
  const byStatus = new Map<number, (typeof API_ERRORS)[number][]>();
  for (const code of codes) {
    const known = API_ERRORS.filter((e) => e.code === code);
    if (known.length === 0) throw new Error(`unknown error code ${code}`);
    for (const e of known) byStatus.set(e.status, [...(byStatus.get(e.status) ?? []), e]);
  }
  const responses: Record<string, ResponseObject> = {};
  for (const [status, errors] of [...byStatus].sort(([a], [b]) => a - b)) {
    const examples: Record<string, { summary: string; value: unknown }> = {};
    for (const e of errors) {
      examples[e.code] = {
        summary: e.when,
        value: {
          status: "error",
          error: {
            code: e.code,
            message: EXAMPLE_MESSAGES[e.code] ?? e.when,
            ...(e.code === "invalid_request" ? { fields: { amount: "must be at most 100000000 minor units" } } : {}),
            ...(e.code === "internal_error" ? { requestId: "9f3c2a7e-0d1b-4c55-8f6e-2b7d1a9c3e10" } : {}),
          },
        },
      };
    }
    responses[String(status)] = {
      description: errors.map((e) => `\`${e.code}\`: ${e.when}`).join(" "),
      ...(status === 409 || status === 429 || status === 503 ? { headers: retryAfter } : {}),
      content: json(ref("ErrorResponse"), { examples }),
    };
  }
  return responses;
}

/** The Standard Webhooks headers of every postback. */
const postbackHeaders: Parameter[] = [
  {
    name: "webhook-id",
    in: "header",
    required: true,
    description: "Message id (msg_...), the same on every retry.",
    schema: { type: "string" },
  },
  {
    name: "webhook-timestamp",
    in: "header",
    required: true,
    description: "Unix seconds of this attempt; refuse values far from now.",
    schema: { type: "string", pattern: "^[0-9]+$" },
  },
  {
    name: "webhook-signature",
    in: "header",
    required: true,
    description:
      "Space-separated entries over `${webhook-id}.${webhook-timestamp}.${body}`: `v1,<base64 HMAC-SHA256>` with the base64-decoded secret after `whsec_`, or, for a shop on key pairs, `v1a,<base64 Ed25519 signature>` verified with the raw 32-byte public key after `whpk_`. Two entries during a rotation or a switch: accept if any matches.",
    schema: { type: "string" },
  },
];

export const SHOP_ERRORS = ["unauthorized", "shop_disabled", "rate_limited", "internal_error"] as const;
/** What reading a request's body can answer on any route that takes one (routes/_body_limit.ts). */
const BODY_ERRORS = ["body_too_large", "body_unreadable", "request_timeout"] as const;
/** What a JSON API route's body can answer besides (routes/_read_json.ts). */
export const JSON_BODY_ERRORS = ["invalid_request", "unsupported_media_type", ...BODY_ERRORS] as const;
/** What both provider webhook paths (the default account's and each account's own) can answer. */
const PROVIDER_WEBHOOK_ERRORS = [
  "invalid_webhook",
  "not_found",
  "rate_limited",
  "conflict",
  "status_not_confirmed",
  "overloaded",
  ...BODY_ERRORS,
  "internal_error",
  "provider_error",
  "provider_timeout",
] as const;
const bearer = [{ bearerAuth: [] }];
const paymentIdParam: Parameter = {
  name: "id",
  in: "path",
  required: true,
  description: "Our payment id (pay_...).",
  schema: { type: "string" },
};
const refundExample = {
  status: "success",
  refund: {
    id: "re_Qm3vX8kLp2sT9wYb4nJc1A",
    paymentId: "pay_7fJ2kQ9xVb3sLm1N",
    shopRefundId: "rf-1",
    amount: 300,
    currency: "EUR",
    status: "succeeded",
    reason: "One item returned",
    failureReason: null,
    createdAt: "2026-11-24T09:00:00.000Z",
    settledAt: "2026-11-24T09:00:00.000Z",
  },
};

/** The forms API (shop) and the form page with its submit (buyer). */
function formOperations(publicBaseUrl: string): Record<string, PathItem> {
  const formId = "form_V1StGXR8Z5jdHi6BmyT3Aw";
  const view = {
    id: formId,
    url: `${publicBaseUrl}/forms/${formId}`,
    kind: "fiat",
    title: "Support the shelter",
    description: null,
    status: "active",
    amount: null,
    currency: "EUR",
    coin: null,
    network: null,
    createdAt: "2026-11-28T10:00:00.000Z",
    disabledAt: null,
  };
  const idParam: Parameter = {
    name: "id",
    in: "path",
    required: true,
    description: "Our form id (form_...).",
    schema: { type: "string" },
  };
  const html = (description: string): ResponseObject => ({
    description,
    content: { "text/html": { schema: { type: "string" } } },
  });
  return {
    "/api/v1/forms": {
      post: {
        operationId: "createForm",
        summary: "Create a form",
        description:
          "Creates a hosted payment form. Every value given is fixed; every one left out the buyer fills on the form's page (with the email, always asked). A fixed amount needs its currency (fiat) or coin and network (crypto). Answers the form's page URL, to share as a link or show in an iframe on the shop's embedding sites.",
        tags: ["Forms"],
        security: bearer,
        requestBody: {
          required: true,
          description: "At most 16 KiB of JSON.",
          content: json(ref("FormRequest"), {
            examples: {
              donation: {
                summary: "The buyer types the amount",
                value: { kind: "fiat", title: "Support the shelter", currency: "EUR" },
              },
              ticket: {
                summary: "A fixed price",
                value: { kind: "fiat", title: "Concert ticket", amount: 1500, currency: "EUR" },
              },
              tips: {
                summary: "A crypto tip jar",
                value: { kind: "crypto", title: "Tip jar", coin: "USDT", network: "tron" },
              },
            },
          }),
        },
        responses: {
          "201": {
            description: "Created.",
            content: json(ref("FormCreatedResponse"), {
              example: { status: "success", form: { id: formId, url: view.url } },
            }),
          },
          ...errorResponses([...JSON_BODY_ERRORS, ...SHOP_ERRORS]),
        },
        "x-audience": "shop",
      },
      get: {
        operationId: "listForms",
        summary: "List your forms",
        description: "Newest first, at most 200, active and disabled. `null` marks what the buyer fills.",
        tags: ["Forms"],
        security: bearer,
        responses: {
          "200": {
            description: "The forms.",
            content: json(ref("FormListResponse"), { example: { status: "success", forms: [view] } }),
          },
          ...errorResponses([...SHOP_ERRORS]),
        },
        "x-audience": "shop",
      },
    },
    "/api/v1/forms/{id}/disable": {
      post: {
        operationId: "disableForm",
        summary: "Disable a form",
        description:
          "The form stops taking payments at once: its page says it is closed and submits are refused. Cannot be undone; disabling a disabled form answers it unchanged. No body. Another shop's form is 404.",
        tags: ["Forms"],
        security: bearer,
        parameters: [idParam],
        responses: {
          "200": {
            description: "The form, disabled.",
            content: json(ref("FormResponse"), {
              example: {
                status: "success",
                form: { ...view, status: "disabled", disabledAt: "2026-11-28T11:00:00.000Z" },
              },
            }),
          },
          ...errorResponses([...SHOP_ERRORS, "not_found"]),
        },
        "x-audience": "shop",
      },
    },
    "/forms/{id}": {
      get: {
        operationId: "formPage",
        summary: "The buyer's form page",
        description:
          "An HTML page asking only for the open fields and the email, with a signed form token (valid 2 hours) instead of cookies. Framable only by the shop's embedding sites (`frame-ancestors`).",
        tags: ["Forms"],
        security: [],
        parameters: [idParam],
        responses: {
          "200": html("The form."),
          "404": html("No such form: a page telling the buyer to check the link or ask the shop for its current one."),
          "410": html("The form (or its shop) is disabled: a page saying so."),
        },
        "x-audience": "buyer",
      },
    },
    "/forms/{id}/submit": {
      post: {
        operationId: "submitForm",
        summary: "The buyer sends the form",
        description:
          "Sent by the form page (`application/x-www-form-urlencoded`: `_token` and the open fields). Fixed values are taken from the form, never from the post. The same token sent again answers the same payment or invoice.",
        tags: ["Forms"],
        security: [],
        parameters: [idParam],
        requestBody: {
          required: true,
          content: {
            "application/x-www-form-urlencoded": {
              schema: {
                type: "object",
                required: ["_token", "email"],
                properties: {
                  _token: { type: "string", description: "The token of the page." },
                  email: { type: "string" },
                  amount: { type: "string", description: "When open: major units (fiat) or a decimal (crypto)." },
                  currency: { type: "string", description: "When open (fiat)." },
                  coin: { type: "string", description: "When coin or network is open (crypto): `COIN:network`." },
                },
              },
            },
          },
        },
        responses: {
          "303": {
            description: "Fiat: to our pay link (`/integration/pay`). Crypto: to the invoice's page.",
            headers: { Location: { description: "Where the buyer goes.", schema: { type: "string" }, required: true } },
          },
          "403": html("The token is forged, for another form or expired: the page again with a message."),
          "409": html("The same page was sent before with other values: the page again; nothing new is created."),
          "410": html("The form is disabled."),
          "422": html("Invalid fields: the page again with a message beside each; nothing is created."),
          "429": html("Too many submits from this address; see `Retry-After`."),
          "502": html("The payment service did not answer: the page again with a message; nothing was charged."),
          "503": html("The shop's postback host could not be looked up in time: the page again; see `Retry-After`."),
        },
        "x-audience": "buyer",
      },
    },
  };
}

function redirectOperation(kind: "pay" | "success" | "error"): Operation {
  const text = {
    pay:
      "Where the shop sends the buyer (the `url` from init-payment). While the payment is open it redirects to the provider's pay page; once it is settled, to the shop's successUrl or errorUrl.",
    success: "The provider sends the buyer here after paying; we redirect to the shop's successUrl.",
    error: "The provider sends the buyer here after a failed or cancelled payment; we redirect to the shop's errorUrl.",
  }[kind];
  return {
    operationId: `redirect${kind[0].toUpperCase()}${kind.slice(1)}`,
    summary:
      { pay: "Send the buyer to pay", success: "Buyer back after paying", error: "Buyer back after failing" }[kind],
    description: `${text} A redirect never changes a payment and is no proof of payment: wait for the postback.`,
    tags: ["Buyer redirects"],
    security: [],
    parameters: [{
      name: "id",
      in: "query",
      required: true,
      description: "Our payment id (pay_...).",
      schema: { type: "string", maxLength: 100 },
    }],
    responses: {
      "302": {
        description: "Redirect to the stored URL (never to one taken from the query string).",
        headers: { Location: { description: "Where the buyer goes.", schema: { type: "string" }, required: true } },
      },
      "404": {
        description: "Unknown payment (or one still being created): an HTML page for the buyer.",
        content: { "text/html": { schema: { type: "string" } } },
      },
      ...(kind === "pay"
        ? {
          "410": {
            description:
              "The payment expired (or its expiresAt passed) or was cancelled: an HTML page saying so, with a link to the shop's errorUrl.",
            content: { "text/html": { schema: { type: "string" } } },
          },
        }
        : {}),
    },
    "x-audience": "buyer",
  };
}

/** Builds the whole OpenAPI document. Pure; callers cache it. */
export function buildOpenApi(opts: OpenApiOptions): OpenApiDocument {
  const requestSchemas = componentSchemas({
    InitPaymentRequest: initPaymentSchema(opts.maxAmount),
    RefundRequest: refundRequestSchema,
    NewAccountRequest: NewAccountSchema,
    ShopRoutingRequest: ShopRoutingSchema,
    CheckoutSessionRequest: checkoutSessionSchema(opts.maxAmount),
    CheckoutConfirmRequest: checkoutSchemas.CheckoutConfirmRequest,
    CheckoutMountRequest: checkoutSchemas.CheckoutMountRequest,
    FormRequest: formRequestSchema(opts.maxAmount),
    CreateInvoiceRequest: createInvoiceSchema,
  }, "input");
  // A superRefine cannot become JSON Schema: it demands exactly one of successUrl and its legacy spelling.
  requestSchemas.InitPaymentRequest.oneOf = [{ required: ["successUrl"] }, { required: ["sussessUrl"] }];
  const responseSchemas = componentSchemas({
    InitPaymentResponse,
    PaymentStatus: PaymentStatusSchema,
    Payment: PaymentView,
    PaymentResponse,
    OptionsResponse,
    ErrorResponse,
    Postback: PostbackBody,
    ProviderWebhook: WebhookBody,
    ProviderRefundWebhook: RefundWebhookBody,
    ProviderWebhookResponse,
    RefundStatus: RefundStatusSchema,
    Refund: RefundView,
    RefundResponse,
    RefundListResponse,
    RefundPostback: RefundPostbackBody,
    AccountResponse,
    AccountListResponse,
    RoutingResponse,
    OperationListResponse,
    CheckoutConfigResponse: checkoutSchemas.CheckoutConfigResponse,
    CheckoutSessionCreatedResponse: checkoutSchemas.CheckoutSessionCreatedResponse,
    CheckoutMountResponse: checkoutSchemas.CheckoutMountResponse,
    CheckoutConfirmResponse: checkoutSchemas.CheckoutConfirmResponse,
    FormCreatedResponse,
    Form: FormView,
    FormResponse,
    FormListResponse,
    InvoiceStatus: InvoiceStatusSchema,
    Invoice: InvoiceView,
    InvoiceResponse,
    InvoicePostback: InvoicePostbackBody,
    ChainNotice,
  }, "output");

  const initExample = {
    id: "order-1",
    email: "buyer@example.com",
    amount: 1000,
    currency: "EUR",
    successUrl: "https://shop.example/thanks",
    errorUrl: "https://shop.example/sorry",
  };
  const paymentExample = {
    status: "success",
    payment: {
      id: "pay_7fJ2kQ9xVb3sLm1N",
      shopTxId: "order-1",
      status: "succeeded",
      amount: 1000,
      currency: "EUR",
      type: "fiat",
      email: "buyer@example.com",
      name: null,
      url: `${opts.publicBaseUrl}/integration/pay?id=pay_7fJ2kQ9xVb3sLm1N`,
      successUrl: "https://shop.example/thanks",
      errorUrl: "https://shop.example/sorry",
      postbackUrl: "https://shop.example/postbacks",
      createdAt: "2026-11-23T12:00:00.000Z",
      updatedAt: "2026-11-23T12:01:10.000Z",
      finalizedAt: "2026-11-23T12:01:10.000Z",
      expiresAt: "2026-11-24T12:00:00.000Z",
      late: false,
    },
  };
  const created = {
    description: "Created.",
    content: json(ref("InitPaymentResponse"), {
      example: {
        status: "success",
        id: "pay_7fJ2kQ9xVb3sLm1N",
        url: `${opts.publicBaseUrl}/integration/pay?id=pay_7fJ2kQ9xVb3sLm1N`,
      },
    }),
  };

  return {
    openapi: "3.1.0",
    info: {
      title: "AimbrellaPay API",
      version: API_VERSION,
      license: { name: "Proprietary: for shops integrating with AimbrellaPay", identifier: "LicenseRef-AimbrellaPay" },
      description:
        "One small API in front of the Bansky payment provider. Amounts are integers in the currency's minor unit. Settled payments are reported by signed postbacks (Standard Webhooks).",
    },
    servers: [{ url: opts.publicBaseUrl }],
    tags: [
      { name: "Payments", description: "The shop's API; every call carries the shop's key." },
      { name: "Refunds", description: "Giving back money of a paid payment; every call carries the shop's key." },
      {
        name: "Embedded checkout",
        description:
          "The buyer pays on the shop's own page: a session made with the secret key, mounted in the browser with checkout.js, confirmed before shipping. Config and mount also take a publishable key (apay_pk_).",
      },
      {
        name: "Invoices",
        description: "Crypto invoices paid to a deposit address of your pool; every call carries the shop's key.",
      },
      { name: "Buyer redirects", description: "Pages the buyer's browser passes through." },
      {
        name: "Forms",
        description:
          "Hosted payment forms (payment links): the shop creates them with its key; buyers open and send their pages.",
      },
      { name: "Provider webhook", description: "Provider-facing: called by Bansky, not by shops." },
      {
        name: "Admin",
        description:
          "Operators' API for automation: provider accounts, shops' routing and the operation log. Every call carries an operator API token (`deno task operator token create EMAIL`), never a shop's key.",
      },
    ],
    paths: {
      "/api/v1/init-payment": {
        post: {
          operationId: "initPayment",
          summary: "Create a payment",
          description:
            "Creates a payment at the provider and answers our wrapper URL for the buyer. Unknown or duplicated fields are refused. URLs must be https, without credentials, at most 2048 characters and on the shop's allowed hosts; postback hosts must be public addresses. Retrying with the same `id` (or Idempotency-Key) and body answers 200 with the first answer.",
          tags: ["Payments"],
          security: bearer,
          parameters: [{
            name: "Idempotency-Key",
            in: "header",
            required: false,
            description:
              "For requests without `id`: the same key with the same body answers the first result, however much later (keys do not expire: the payment id is derived from the key). Use a new key for a new payment.",
            schema: { type: "string", minLength: 1, maxLength: 255 },
          }],
          requestBody: {
            required: true,
            description: "At most 16 KiB of JSON.",
            content: json(ref("InitPaymentRequest"), { example: initExample }),
          },
          responses: {
            "200": { ...created, description: "A retry of a request already handled: the first answer again." },
            "201": created,
            ...errorResponses([
              ...JSON_BODY_ERRORS,
              ...SHOP_ERRORS,
              "idempotency_mismatch",
              "no_route",
              "amount_not_accepted",
              "dns_timeout",
              "provider_error",
              "provider_timeout",
            ]),
          },
          "x-audience": "shop",
        },
      },
      "/api/v1/payments/{id}": {
        get: {
          operationId: "getPayment",
          summary: "Read a payment by our id",
          description: "Only the shop's own payments; another shop's payment is 404.",
          tags: ["Payments"],
          security: bearer,
          parameters: [{
            name: "id",
            in: "path",
            required: true,
            description: "Our payment id (pay_...).",
            schema: { type: "string" },
          }],
          responses: {
            "200": { description: "The payment.", content: json(ref("PaymentResponse"), { example: paymentExample }) },
            ...errorResponses([...SHOP_ERRORS, "not_found"]),
          },
          "x-audience": "shop",
        },
      },
      "/api/v1/payments/{id}/refunds": {
        post: {
          operationId: "createRefund",
          summary: "Refund a payment",
          description:
            "Gives back all or part of a `succeeded` or `partially_refunded` payment. The amount is reserved at once: pending refunds count as spent, so concurrent refunds never add up to more than the payment. The provider may settle the refund at once (`status` succeeded or failed in the answer) or later (`pending`, then a `refund.succeeded` or `refund.failed` postback). A failed refund gives its amount back, also one the provider reverses after it succeeded (`refund.failed` after `refund.succeeded`; the payment's refundedAmount goes down). Retrying with the same `id` (or Idempotency-Key) and body answers 200 with the same refund.",
          tags: ["Refunds"],
          security: bearer,
          parameters: [
            paymentIdParam,
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              description: "For requests without `id`: the same key with the same body answers the same refund.",
              schema: { type: "string", minLength: 1, maxLength: 255 },
            },
          ],
          requestBody: {
            required: true,
            description: "At most 16 KiB of JSON; `{}` refunds all that is left.",
            content: json(ref("RefundRequest"), { example: { amount: 300, reason: "One item returned", id: "rf-1" } }),
          },
          responses: {
            "200": {
              description: "A retry of a request already handled: the same refund, as it is now.",
              content: json(ref("RefundResponse"), { example: refundExample }),
            },
            "201": { description: "Created.", content: json(ref("RefundResponse"), { example: refundExample }) },
            ...errorResponses([
              ...JSON_BODY_ERRORS,
              ...SHOP_ERRORS,
              "not_found",
              "payment_not_refundable",
              "conflict",
              "idempotency_mismatch",
              "refund_exceeds_payment",
            ]),
          },
          "x-audience": "shop",
        },
        get: {
          operationId: "listRefunds",
          summary: "List a payment's refunds",
          description: "Oldest first, whatever their status. Only the shop's own payments; another shop's is 404.",
          tags: ["Refunds"],
          security: bearer,
          parameters: [paymentIdParam],
          responses: {
            "200": {
              description: "The refunds.",
              content: json(ref("RefundListResponse"), {
                example: { status: "success", refunds: [refundExample.refund] },
              }),
            },
            ...errorResponses([...SHOP_ERRORS, "not_found"]),
          },
          "x-audience": "shop",
        },
      },
      "/api/v1/payments": {
        get: {
          operationId: "getPaymentByShopTxId",
          summary: "Read a payment by your id",
          description: "Finds the payment created with this `id` in init-payment.",
          tags: ["Payments"],
          security: bearer,
          parameters: [{
            name: "shopTxId",
            in: "query",
            required: true,
            description: "Your `id` from init-payment.",
            schema: { type: "string", minLength: 1, maxLength: 64 },
          }],
          responses: {
            "200": { description: "The payment.", content: json(ref("PaymentResponse"), { example: paymentExample }) },
            ...errorResponses(["invalid_request", ...SHOP_ERRORS, "not_found"]),
          },
          "x-audience": "shop",
        },
      },
      "/api/v1/options": {
        get: {
          operationId: "getOptions",
          summary: "What your shop may take",
          description:
            "The currencies init-payment accepts for your shop (its routes pick an account that takes them); anything else is answered 422 no_route. `fiat.amountSteps`: for each, the step in minor units its amounts must be a multiple of at that account's provider (1 for most; MGA at Stripe: 100, whole ariary; three-decimal currencies at Stripe, such as KWD: 10); another amount is answered 422 amount_not_accepted. `crypto.coins`: the coins and networks POST /api/v1/invoices takes, with each one's decimals and confirmations.",
          tags: ["Payments"],
          security: bearer,
          responses: {
            "200": {
              description: "The options.",
              content: json(ref("OptionsResponse"), {
                example: {
                  status: "success",
                  fiat: { currencies: ["EUR", "MGA", "USD"], amountSteps: { EUR: 1, MGA: 100, USD: 1 } },
                  crypto: cryptoOptions(),
                },
              }),
            },
            ...errorResponses([...SHOP_ERRORS]),
          },
          "x-audience": "shop",
        },
      },
      "/api/v1/payments/{id}/cancel": {
        post: {
          operationId: "cancelPayment",
          summary: "Cancel a pending payment",
          description:
            "Stops a `pending` payment: the provider is told to take no money for it, the payment becomes `cancelled`, and a `payment.cancelled` postback follows. If the buyer paid before the cancel arrived, the payment takes the provider's status and the answer is 409. Money the provider confirms after a cancel it could not honour makes the payment `succeeded` with `late: true`. No body.",
          tags: ["Payments"],
          security: bearer,
          parameters: [{
            name: "id",
            in: "path",
            required: true,
            description: "Our payment id (pay_...).",
            schema: { type: "string" },
          }],
          responses: {
            "200": {
              description: "Cancelled: the payment as it is now.",
              content: json(ref("PaymentResponse"), {
                example: {
                  ...paymentExample,
                  payment: { ...paymentExample.payment, status: "cancelled", late: false },
                },
              }),
            },
            ...errorResponses([
              ...SHOP_ERRORS,
              "not_found",
              "payment_not_cancellable",
              "provider_error",
              "provider_timeout",
            ]),
          },
          "x-audience": "shop",
        },
      },
      ...formOperations(opts.publicBaseUrl),
      "/integration/pay": { get: redirectOperation("pay") },
      "/integration/success": { get: redirectOperation("success") },
      "/integration/error": { get: redirectOperation("error") },
      "/api/payment-verify": {
        post: {
          operationId: "providerWebhook",
          summary: "Provider webhook (Bansky)",
          description:
            'Provider-facing: Bansky calls it when a payment changes; shops never do. We check the HMAC signature and a 300 s timestamp window, ignore event ids already handled, confirm the status with Bansky, and commit the change with its postback before answering 2xx. Anything else makes Bansky retry. Refund news (`type: "refund"`) is confirmed with Bansky\'s refund status the same way and settles our refund.',
          tags: ["Provider webhook"],
          security: [],
          parameters: [{
            name: SIGNATURE_HEADER,
            in: "header",
            required: true,
            description: '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the shared webhook secret.',
            schema: { type: "string" },
          }],
          requestBody: {
            required: true,
            description: "At most 64 KiB.",
            content: json({ oneOf: [ref("ProviderWebhook"), ref("ProviderRefundWebhook")] }, {
              example: { eventId: "evt_1", id: "pay_7fJ2kQ9xVb3sLm1N", ref: "bsk_42", status: "paid" },
            }),
          },
          responses: {
            "200": {
              description:
                "Committed (outcome `applied`), a duplicate (`duplicate`), or news that changes nothing and needs no retry (`unchanged`): a payment at the provider made for an id of ours that no stored payment names and that took no money (still open, expired or failed), or news without an id of ours; or news that such a payment took money, once an operator has marked it handled (`orphan_handled`: refunded at the provider, or taken by the shop by hand; until then it is refused). The provider may stop retrying. See the errors page for what is refused instead.",
              content: json(ref("ProviderWebhookResponse"), { example: { status: "success", outcome: "applied" } }),
            },
            ...errorResponses(PROVIDER_WEBHOOK_ERRORS),
          },
          "x-audience": "provider",
        },
      },
      "/api/payment-verify/{accountId}": {
        post: {
          operationId: "providerAccountWebhook",
          summary: "Provider webhook of one account (Bansky or Stripe)",
          description:
            "Provider-facing: each provider account's webhooks arrive at its own address and are verified with that account's secret (the path without an account is the default account's). A Bansky account sends the body above with `bansky-signature`; a Stripe account sends Stripe events (`checkout.session.*`, `refund.*`) with `Stripe-Signature`, verified by the Stripe SDK. Handled as above: confirmed with the provider, committed, then 2xx.",
          tags: ["Provider webhook"],
          security: [],
          parameters: [
            {
              name: "accountId",
              in: "path",
              required: true,
              description: "The provider account's id (pa_...), or `default`.",
              schema: { type: "string" },
            },
            {
              name: SIGNATURE_HEADER,
              in: "header",
              required: false,
              description: "Bansky accounts: as above.",
              schema: { type: "string" },
            },
            {
              name: "Stripe-Signature",
              in: "header",
              required: false,
              description: "Stripe accounts: `t=<unix seconds>,v1=<hex HMAC-SHA256>` with the endpoint's secret.",
              schema: { type: "string" },
            },
          ],
          requestBody: {
            required: true,
            description: "At most 64 KiB: the provider's own event format.",
            content: json({ type: "object" }, {
              example: { eventId: "evt_1", id: "pay_7fJ2kQ9xVb3sLm1N", ref: "bsk_42", status: "paid" },
            }),
          },
          responses: {
            "200": {
              description:
                "As above: committed (`applied`), a duplicate (`duplicate`), news of money no payment names that an operator has marked handled (`orphan_handled`), or news that changes nothing (`unchanged`), which for a Stripe account also takes in an event of another connected account of our platform, a session or refund not made by us (a payment link's), and an event type we do not use.",
              content: json(ref("ProviderWebhookResponse"), { example: { status: "success", outcome: "applied" } }),
            },
            ...errorResponses(PROVIDER_WEBHOOK_ERRORS),
          },
          "x-audience": "provider",
        },
      },
      ...checkoutPaths(opts.publicBaseUrl),
      ...adminPaths(),
      ...invoicePaths(opts),
    },
    webhooks: {
      ...invoiceWebhooks(opts),
      refundPostback: {
        post: {
          operationId: "refundPostback",
          summary: "Refund postback to the shop",
          description:
            "When a refund of a payment created with an `id` succeeds or fails we POST this to the payment's postback URL, signed and retried exactly like payment postbacks. `data` is the refund, with `payment` saying where the payment stands after it.",
          tags: ["Refunds"],
          security: [],
          parameters: postbackHeaders,
          requestBody: {
            required: true,
            content: json(ref("RefundPostback"), {
              example: {
                type: "refund.succeeded",
                timestamp: "2026-11-24T09:00:00.000Z",
                data: {
                  ...refundExample.refund,
                  payment: {
                    id: "pay_7fJ2kQ9xVb3sLm1N",
                    shopTxId: "order-1",
                    status: "partially_refunded",
                    amount: 1000,
                    refundedAmount: 300,
                  },
                },
              },
            }),
          },
          responses: {
            "2XX": { description: "Acknowledged: no more attempts." },
            default: { description: "Anything else is retried on the schedule of payment postbacks." },
          },
          "x-audience": "shop",
        },
      },
      postback: {
        post: {
          operationId: "postback",
          summary: "Postback to the shop",
          description:
            "When a payment created with an `id` settles we POST this to its postback URL, signed with Standard Webhooks headers. Verify the signature over the raw body before trusting it; deduplicate on `webhook-id`, which stays the same on every retry.",
          tags: ["Payments"],
          security: [],
          parameters: postbackHeaders,
          requestBody: {
            required: true,
            content: json(ref("Postback"), {
              example: {
                type: "payment.succeeded",
                timestamp: "2026-11-23T12:01:10.000Z",
                data: {
                  id: "order-1",
                  paymentId: "pay_7fJ2kQ9xVb3sLm1N",
                  status: "succeeded",
                  amount: 1000,
                  currency: "EUR",
                  type: "fiat",
                  email: "buyer@example.com",
                  createdAt: "2026-11-23T12:00:00.000Z",
                  finalizedAt: "2026-11-23T12:01:10.000Z",
                  late: false,
                },
              },
            }),
          },
          responses: {
            "2XX": { description: "Acknowledged: no more attempts." },
            "410": { description: "Gone: we stop retrying and mark the postback failed." },
            "429": { description: "Retried, not before `Retry-After` (at most 24 h).", headers: retryAfter },
            "503": { description: "Retried, not before `Retry-After` (at most 24 h).", headers: retryAfter },
            default: {
              description:
                "Anything else (3xx included: redirects are not followed) and timeouts are retried on the schedule.",
            },
          },
          "x-audience": "shop",
        },
      },
    },
    components: {
      schemas: { ...requestSchemas, ...responseSchemas },
      securitySchemes: {
        operatorToken: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "apay_ot_...",
          description:
            "An operator's API token for /api/admin/v1: `Authorization: Bearer apay_ot_...`, from `deno task operator token create EMAIL`.",
        },
        publishableKey: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "apay_pk_...",
          description:
            "The shop's publishable key, safe in a browser: `Authorization: Bearer apay_pk_...`. Only the checkout config and mount take it; every other route answers 403 publishable_key_not_allowed.",
        },
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "apay_sk_...",
          description: "The shop's API key: `Authorization: Bearer apay_sk_...` (`Token apay_sk_...` also works).",
        },
      },
    },
  };
}

const ADMIN_ERRORS = ["unauthorized", "rate_limited", "internal_error"] as const;
const operatorToken = [{ operatorToken: [] }];

/** The admin JSON API (routes/api/admin/v1.ts), for operators' automation. */
function adminPaths(): Record<string, PathItem> {
  const admin = (op: Omit<Operation, "tags" | "security" | "x-audience">): Operation => ({
    ...op,
    tags: ["Admin"],
    security: operatorToken,
    "x-audience": "operator",
  });
  const account = {
    id: "pa_Qm3vX8kLp2sT9wYb4nJc1A",
    provider: "bansky",
    label: "Org B",
    orgId: "991011000048",
    active: true,
    currencies: ["EUR"],
    createdAt: "2026-11-28T09:00:00.000Z",
    updatedAt: "2026-11-28T09:00:00.000Z",
    credentialsUpdatedAt: "2026-11-28T09:00:00.000Z",
  };
  const routing = {
    rules: [{ accountId: account.id, currency: "EUR", type: null }],
    defaultAccountId: null,
  };
  const shopIdParam: Parameter = {
    name: "id",
    in: "path",
    required: true,
    description: "The shop's id (shop_...).",
    schema: { type: "string" },
  };
  return {
    "/api/admin/v1/accounts": {
      get: admin({
        operationId: "adminListAccounts",
        summary: "List provider accounts",
        description: "Every account, the default one (from the BANSKY_* settings) first. Credentials are never shown.",
        responses: {
          "200": {
            description: "The accounts.",
            content: json(ref("AccountListResponse"), { example: { status: "success", accounts: [account] } }),
          },
          ...errorResponses([...ADMIN_ERRORS]),
        },
      }),
      post: admin({
        operationId: "adminCreateAccount",
        summary: "Create a provider account",
        description:
          "Bansky credentials: `apiUrl`, `apiToken`, `webhookSecret`. Stripe: `secretKey`, `webhookSecret`, `connectedAccountId`, and optionally `publishableKey` (`pk_...`, public, for Stripe's embedded checkout). They are stored apart and never shown back; the creation is audited with the token's operator.",
        requestBody: {
          required: true,
          content: json(ref("NewAccountRequest"), {
            example: {
              provider: "bansky",
              label: "Org B",
              orgId: "991011000048",
              currencies: ["EUR"],
              credentials: { apiUrl: "https://api.bansky.example", apiToken: "...", webhookSecret: "..." },
            },
          }),
        },
        responses: {
          "201": {
            description: "Created; its webhooks go to /api/payment-verify/{accountId}.",
            content: json(ref("AccountResponse"), { example: { status: "success", account } }),
          },
          ...errorResponses([...JSON_BODY_ERRORS, ...ADMIN_ERRORS]),
        },
      }),
    },
    "/api/admin/v1/shops/{id}/routing": {
      get: admin({
        operationId: "adminGetRouting",
        summary: "A shop's routing",
        parameters: [shopIdParam],
        responses: {
          "200": {
            description: "The shop's rules, in order, and its default account.",
            content: json(ref("RoutingResponse"), { example: { status: "success", shopId: "shop_01", routing } }),
          },
          ...errorResponses(["not_found", ...ADMIN_ERRORS]),
        },
      }),
      put: admin({
        operationId: "adminSetRouting",
        summary: "Replace a shop's routing",
        description:
          "Replaces every rule at once (first match wins: by currency and/or type), and the default account (null: the platform's). Every account named must exist. Audited.",
        parameters: [shopIdParam],
        requestBody: { required: true, content: json(ref("ShopRoutingRequest"), { example: routing }) },
        responses: {
          "200": {
            description: "The routing as stored.",
            content: json(ref("RoutingResponse"), { example: { status: "success", shopId: "shop_01", routing } }),
          },
          ...errorResponses([...JSON_BODY_ERRORS, "not_found", ...ADMIN_ERRORS]),
        },
      }),
    },
    "/api/admin/v1/operations": {
      get: admin({
        operationId: "adminListOperations",
        summary: "The operation log",
        description:
          "Provider calls (create, status, refund, refund_status, cancel), newest first, kept 90 days; by shop, by account, or all.",
        parameters: [
          {
            name: "shopId",
            in: "query",
            required: false,
            description: "Only this shop's calls.",
            schema: { type: "string" },
          },
          {
            name: "accountId",
            in: "query",
            required: false,
            description: "Only this account's calls.",
            schema: { type: "string" },
          },
          {
            name: "limit",
            in: "query",
            required: false,
            description: "At most this many entries (1-500, default 50).",
            schema: { type: "integer", minimum: 1, maximum: 500, default: 50 },
          },
        ],
        responses: {
          "200": {
            description: "The entries.",
            content: json(ref("OperationListResponse")),
          },
          ...errorResponses(["invalid_request", ...ADMIN_ERRORS]),
        },
      }),
    },
  };
}

/** An invoice as the API answers it, for the examples. */
function invoiceExample(base: string, over: Record<string, unknown> = {}) {
  return {
    id: "inv_H23EQW-M7mXhGSvLLawdBw",
    shopInvoiceId: "order-17",
    status: "waiting_for_deposit",
    coin: "USDT",
    network: "tron",
    amount: "12.5",
    paidAmount: "0",
    pendingAmount: "0",
    overpaidAmount: "0",
    lateAmount: "0",
    address: "TdNfu7Mf53N8c9T4JohyyRCfTY9v6Nqcsn",
    checkoutUrl: `${base}/invoices/inv_H23EQW-M7mXhGSvLLawdBw`,
    title: "Order 17",
    description: "",
    confirmationsNeeded: 20,
    deposits: [],
    createdAt: "2026-11-28T09:42:10.890Z",
    expiresAt: "2026-11-28T10:42:10.890Z",
    closedAt: null,
    ...over,
  };
}

/** Crypto invoices (routes/api/v1.ts) and the chain service's notices (routes/webhooks/mod.ts). */
function invoicePaths(opts: OpenApiOptions): Record<string, PathItem> {
  const base = opts.publicBaseUrl;
  const invoiceIdParam: Parameter = {
    name: "id",
    in: "path",
    required: true,
    description: "Our invoice id (inv_...).",
    schema: { type: "string" },
  };
  return {
    "/api/v1/invoices": {
      post: {
        operationId: "createInvoice",
        summary: "Create a crypto invoice",
        description:
          "Creates an invoice for `amount` of `coin` on `network` (see GET /api/v1/options) and gives it a deposit address of your pool on that network: a free one (held by no open invoice), or a new one when none is free. The buyer pays at `checkoutUrl`. `invoice.<status>` postbacks follow every status change. Retrying with the same `id` (or Idempotency-Key) and body answers 200 with the same invoice.",
        tags: ["Invoices"],
        security: bearer,
        parameters: [{
          name: "Idempotency-Key",
          in: "header",
          required: false,
          description: "For requests without `id`: the same key with the same body answers the same invoice.",
          schema: { type: "string", minLength: 1, maxLength: 255 },
        }],
        requestBody: {
          required: true,
          content: json(ref("CreateInvoiceRequest"), {
            example: { coin: "USDT", network: "tron", amount: "12.50", id: "order-17", title: "Order 17" },
          }),
        },
        responses: {
          "200": {
            description: "A retry of a request already handled: the same invoice, as it is now.",
            content: json(ref("InvoiceResponse")),
          },
          "201": {
            description: "Created.",
            content: json(ref("InvoiceResponse"), { example: { status: "success", invoice: invoiceExample(base) } }),
          },
          ...errorResponses([
            ...SHOP_ERRORS,
            ...JSON_BODY_ERRORS,
            "idempotency_mismatch",
            "conflict",
            "provider_error",
            "provider_timeout",
            "invoices_unavailable",
            "dns_timeout",
          ]),
        },
        "x-audience": "shop",
      },
    },
    "/api/v1/invoices/{id}": {
      get: {
        operationId: "getInvoice",
        summary: "Get an invoice",
        description: "The invoice as it is now: status, what has arrived (paid, on its way, late) and every deposit.",
        tags: ["Invoices"],
        security: bearer,
        parameters: [invoiceIdParam],
        responses: {
          "200": {
            description: "The invoice.",
            content: json(ref("InvoiceResponse"), {
              example: {
                status: "success",
                invoice: invoiceExample(base, { status: "payment_confirmation", pendingAmount: "12.5" }),
              },
            }),
          },
          ...errorResponses([...SHOP_ERRORS, "not_found"]),
        },
        "x-audience": "shop",
      },
    },
    "/api/v1/invoices/{id}/cancel": {
      post: {
        operationId: "cancelInvoice",
        summary: "Cancel an invoice",
        description:
          "Reads the chain first, then cancels an invoice that is waiting_for_deposit, payment_confirmation or partially_paid: it becomes `cancelled`, its address rests, then goes back to your pool, and an `invoice.cancelled` postback follows. Deposits still confirming then, and any after it, are recorded as late (lateAmount), never hidden: refund paidAmount plus lateAmount. Cancelling a cancelled invoice answers it again. No body.",
        tags: ["Invoices"],
        security: bearer,
        parameters: [invoiceIdParam],
        responses: {
          "200": {
            description: "Cancelled: the invoice as it is now.",
            content: json(ref("InvoiceResponse"), {
              example: {
                status: "success",
                invoice: invoiceExample(base, { status: "cancelled", closedAt: "2026-11-28T09:50:00.000Z" }),
              },
            }),
          },
          ...errorResponses([...SHOP_ERRORS, "not_found", "invoice_not_cancellable", "conflict"]),
        },
        "x-audience": "shop",
      },
    },
    "/api/chain-notify": {
      post: {
        operationId: "chainNotice",
        summary: "Chain service notice",
        description:
          "Chain-facing: the address service calls it when a deposit to one of our addresses is seen or confirmed; shops never do. We check the HMAC signature (`chain-signature: t=<unix>,v1=<hex HMAC-SHA256 of t.body>`, 300 s window), then read the address again at the service (the notice is only a hint) and update the invoice. A job also polls every open invoice, so a lost notice changes nothing.",
        tags: ["Provider webhook"],
        security: [],
        requestBody: { required: true, content: json(ref("ChainNotice")) },
        responses: {
          "200": {
            description: "Handled (or not news).",
            content: json(ref("ProviderWebhookResponse"), { example: { status: "success", outcome: "applied" } }),
          },
          ...errorResponses([
            "invalid_webhook",
            "not_found",
            "rate_limited",
            "conflict",
            ...BODY_ERRORS,
            "internal_error",
            "provider_error",
            "provider_timeout",
          ]),
        },
        "x-audience": "provider",
      },
    },
  };
}

function invoiceWebhooks(opts: OpenApiOptions): Record<string, PathItem> {
  return {
    invoicePostback: {
      post: {
        operationId: "invoicePostback",
        summary: "Invoice postback to the shop",
        description: `Every status change of an invoice (${
          INVOICE_POSTBACK_TYPES.map((t) => `\`${t}\``).join(", ")
        }; \`invoice.waiting_for_deposit\` only when every deposit on its way was dropped from the chain; \`invoice.late_payment\`, no status change, when money sent after the invoice closed got its confirmations) is POSTed to the invoice's postback URL (its \`postbackUrl\`, else your shop's), signed and retried exactly like payment postbacks, with or without your \`id\`. \`data\` is the invoice as GET /api/v1/invoices/{id} answers it: \`data.id\` is our id (inv_...), \`data.shopInvoiceId\` yours or null. Ship on \`invoice.payment_accepted\` or \`invoice.finished\`, whichever comes first (a read that finds the deposits final at once skips payment_accepted). Statuses can step back and postbacks arrive out of order: the one with the latest \`timestamp\` is current, or read the invoice.`,
        tags: ["Invoices"],
        security: [],
        parameters: postbackHeaders,
        requestBody: {
          required: true,
          content: json(ref("InvoicePostback"), {
            example: {
              type: "invoice.payment_accepted",
              timestamp: "2026-11-28T09:55:00.000Z",
              data: invoiceExample(opts.publicBaseUrl, { status: "payment_accepted", paidAmount: "12.5" }),
            },
          }),
        },
        responses: {
          "2XX": { description: "Acknowledged: no more attempts." },
          default: { description: "Anything else is retried on the schedule of payment postbacks." },
        },
        "x-audience": "shop",
      },
    },
  };
}
