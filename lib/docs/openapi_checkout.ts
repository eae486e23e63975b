import type { PathItem } from "./openapi.ts";
import { errorResponses, json, JSON_BODY_ERRORS, ref, SHOP_ERRORS } from "./openapi.ts";

/** A secret key, or a publishable key: the routes a browser may call. */
const eitherKey: Record<string, string[]>[] = [{ bearerAuth: [] }, { publishableKey: [] }];
const secretKey = [{ bearerAuth: [] }];

/** The embedded checkout's API (routes/api/v1/checkout.ts) in the OpenAPI document. */
export function checkoutPaths(publicBaseUrl: string): Record<string, PathItem> {
  const sessionId = "cs_Vb3sLm1N7fJ2kQ9xAbCdEf";
  const session = {
    id: sessionId,
    status: "complete",
    paymentId: "pay_7fJ2kQ9xVb3sLm1N",
    paymentStatus: "succeeded",
    amount: 2500,
    currency: "EUR",
    lineItems: [{ name: "Umbrella", unitAmount: 1250, quantity: 2 }],
    expiresAt: "2026-11-24T12:00:00.000Z",
  };
  return {
    "/api/v1/checkout/config": {
      get: {
        operationId: "getCheckoutConfig",
        summary: "The embedded checkout's config",
        description:
          "The provider of the shop's default account, the shop's publishable key and the currencies it can take. Answers with a publishable key too.",
        tags: ["Embedded checkout"],
        security: eitherKey,
        responses: {
          "200": {
            description: "The config.",
            content: json(ref("CheckoutConfigResponse"), {
              example: {
                status: "success",
                provider: "bansky",
                providerName: "Bansky",
                publishableKey: "apay_pk_3kQ9xVb3sLm1N7fJ2kQ9xVb3sLm1N7fJ",
                supportedCurrencies: ["EUR", "USD"],
              },
            }),
          },
          ...errorResponses([...SHOP_ERRORS]),
        },
        "x-audience": "shop",
      },
    },
    "/api/v1/checkout/sessions": {
      post: {
        operationId: "createCheckoutSession",
        summary: "Create a checkout session",
        description:
          `Creates the session and its payment (routed like init-payment) and answers the client secret for ${publicBaseUrl}/checkout.js. Give amount, lineItems, or both (their unitAmount × quantity must add up to the amount). Retrying with the same \`id\` (or Idempotency-Key) and body answers 200 with the same session and client secret.`,
        tags: ["Embedded checkout"],
        security: secretKey,
        parameters: [{
          name: "Idempotency-Key",
          in: "header",
          required: false,
          description: "For requests without `id`: the same key with the same body answers the same session.",
          schema: { type: "string", minLength: 1, maxLength: 255 },
        }],
        requestBody: {
          required: true,
          description: "At most 16 KiB of JSON.",
          content: json(ref("CheckoutSessionRequest"), {
            example: {
              id: "order-1",
              lineItems: [{ name: "Umbrella", unitAmount: 1250, quantity: 2 }],
              currency: "EUR",
              customerEmail: "buyer@example.com",
            },
          }),
        },
        responses: {
          "200": {
            description: "A retry of a request already handled: the same session and client secret.",
            content: json(ref("CheckoutSessionCreatedResponse")),
          },
          "201": {
            description: "Created.",
            content: json(ref("CheckoutSessionCreatedResponse"), {
              example: {
                status: "success",
                sessionId,
                clientSecret: `${sessionId}_secret_Qm9vZ3VzLWV4YW1wbGUtc2VjcmV0LW5vdC1yZWFsLTEyMw`,
                amount: 2500,
                currency: "EUR",
                expiresAt: "2026-11-24T12:00:00.000Z",
              },
            }),
          },
          ...errorResponses([
            ...JSON_BODY_ERRORS,
            ...SHOP_ERRORS,
            "publishable_key_not_allowed",
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
    "/api/v1/checkout/sessions/mount": {
      post: {
        operationId: "mountCheckoutSession",
        summary: "Read a session by its client secret",
        description:
          "The session's public view, for a page that draws its own summary beside the checkout. Takes the shop's publishable key (or its secret key); another shop's session is 404.",
        tags: ["Embedded checkout"],
        security: eitherKey,
        requestBody: { required: true, content: json(ref("CheckoutMountRequest")) },
        responses: {
          "200": { description: "The session.", content: json(ref("CheckoutMountResponse")) },
          ...errorResponses([...SHOP_ERRORS, "not_found", ...JSON_BODY_ERRORS]),
        },
        "x-audience": "shop",
      },
    },
    "/api/v1/checkout/confirm": {
      post: {
        operationId: "confirmCheckoutSession",
        summary: "Confirm a checkout session",
        description:
          "The session as the provider sees it: while its payment is pending we ask the provider before answering, never trusting what the browser said. Ship when `status` is `complete`.",
        tags: ["Embedded checkout"],
        security: secretKey,
        requestBody: { required: true, content: json(ref("CheckoutConfirmRequest"), { example: { sessionId } }) },
        responses: {
          "200": {
            description: "The session now.",
            content: json(ref("CheckoutConfirmResponse"), { example: { status: "success", session } }),
          },
          ...errorResponses([
            ...SHOP_ERRORS,
            "publishable_key_not_allowed",
            "not_found",
            ...JSON_BODY_ERRORS,
            "provider_error",
            "provider_timeout",
          ]),
        },
        "x-audience": "shop",
      },
    },
  };
}
