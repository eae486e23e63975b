<?php
// PHP 7.4+, no extensions beyond the defaults.

const TOLERANCE_SECONDS = 300;

/**
 * Returns the parsed postback, or throws RuntimeException.
 * $headers: lower-case names => values. $body: the raw body (php://input).
 */
function verify_postback(string $secret, array $headers, string $body, ?int $now = null): array
{
    $id = $headers['webhook-id'] ?? '';
    $timestamp = $headers['webhook-timestamp'] ?? '';
    $signatures = $headers['webhook-signature'] ?? '';
    if ($id === '' || $timestamp === '' || $signatures === '') {
        throw new RuntimeException('missing webhook headers');
    }
    $now = $now ?? time();
    if (!ctype_digit($timestamp) || abs($now - (int) $timestamp) > TOLERANCE_SECONDS) {
        throw new RuntimeException('webhook-timestamp too old or too new');
    }
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
    if ($key === false) {
        throw new RuntimeException('malformed secret');
    }
    $expected = base64_encode(hash_hmac('sha256', "{$id}.{$timestamp}.{$body}", $key, true));
    // Several entries during a secret rotation: any one may match.
    foreach (explode(' ', $signatures) as $entry) {
        $parts = explode(',', $entry, 2);
        if (count($parts) === 2 && $parts[0] === 'v1' && hash_equals($expected, $parts[1])) {
            return json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        }
    }
    throw new RuntimeException('no valid signature');
}

// $headers = array_change_key_case(getallheaders(), CASE_LOWER);
// $postback = verify_postback(getenv('APAY_WEBHOOK_SECRET'), $headers, file_get_contents('php://input'));
// ... deduplicate on $headers['webhook-id'], then http_response_code(204);
