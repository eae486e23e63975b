/**
 * The coins and networks invoices accept, written once. Validation, the
 * options route, the public docs and the OpenAPI document all derive from
 * these two lists; a new coin is one row here.
 */
export const NETWORKS = {
  bitcoin: { label: "Bitcoin", confirmations: 3, blockSeconds: 600, ownCoin: { coin: "BTC", decimals: 8 } },
  ethereum: { label: "Ethereum", confirmations: 12, blockSeconds: 12, ownCoin: { coin: "ETH", decimals: 18 } },
  tron: { label: "Tron", confirmations: 20, blockSeconds: 3, ownCoin: { coin: "TRX", decimals: 6 } },
} as const satisfies Record<string, NetworkRule>;

interface NetworkRule {
  label: string;
  /** Blocks on top of a deposit's own before we count it as received (payment_accepted). */
  confirmations: number;
  /**
   * The network's usual time between blocks, in seconds (Ethereum's and Tron's slots are fixed; Bitcoin's ten minutes
   * is an average, any one block may take far longer): only for telling a buyer roughly how long a deposit waits.
   */
  blockSeconds: number;
  /**
   * The network's own coin, which every address of it takes, whether we take it or not (TRX, which we do not): sent
   * by mistake to a token's invoice, it is shown in its own units (otherCoinDeposits).
   */
  ownCoin: { coin: string; decimals: number };
}

export type Network = keyof typeof NETWORKS;
export const NETWORK_IDS = Object.keys(NETWORKS) as Network[];

/** Each coin on each network it travels on, with its decimals there (USDT has 6 on Tron and Ethereum). */
export const COIN_OPTIONS = [
  {
    coin: "USDT",
    network: "tron",
    decimals: 6,
    label: "Tether USD (TRC-20)",
    contract: "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
  },
  {
    coin: "USDT",
    network: "ethereum",
    decimals: 6,
    label: "Tether USD (ERC-20)",
    contract: "0xdAC17F958D2ee523a2206206994597C13D831ec7",
  },
  { coin: "BTC", network: "bitcoin", decimals: 8, label: "Bitcoin", contract: null },
  { coin: "ETH", network: "ethereum", decimals: 18, label: "Ether", contract: null },
] as const satisfies readonly CoinOption[];

export interface CoinOption {
  coin: string;
  network: Network;
  decimals: number;
  label: string;
  /** A token's contract on its network (Tether's own), which wallets send it through; null for the network's coin. */
  contract: string | null;
}

export type Coin = typeof COIN_OPTIONS[number]["coin"];
export const COIN_IDS = [...new Set(COIN_OPTIONS.map((o) => o.coin))] as Coin[];

/**
 * A deposit counts as final (the invoice is `finished`) once it has this many
 * times its network's confirmations: deep enough that a reorganisation is no
 * longer a practical concern, so the merchant may ship.
 */
export const FINALITY_FACTOR = 2;

/** The coin on a network, or undefined when we do not take that pair. */
export function findCoinOption(coin: string, network: string): CoinOption | undefined {
  return COIN_OPTIONS.find((o) => o.coin === coin && o.network === network);
}

/** The decimals of `coin` on `network`: one we take, or the network's own coin; undefined for any other. */
export function coinDecimals(coin: string, network: Network): number | undefined {
  const own = NETWORKS[network].ownCoin;
  return findCoinOption(coin, network)?.decimals ?? (own.coin === coin ? own.decimals : undefined);
}

/** Confirmations a deposit on `network` needs to count as received. */
export function confirmationsNeeded(network: Network): number {
  return NETWORKS[network].confirmations;
}

/** Confirmations after which a received deposit is final (see FINALITY_FACTOR). */
export function confirmationsFinal(network: Network): number {
  return NETWORKS[network].confirmations * FINALITY_FACTOR;
}

/** Roughly the seconds a deposit with `have` confirmations waits for the rest it needs on `network`. */
export function confirmationWaitSeconds(network: Network, have: number): number {
  const { confirmations, blockSeconds } = NETWORKS[network];
  return Math.max(0, confirmations - have) * blockSeconds;
}

/** A wait as a buyer reads it: "less than a minute", "about 2 minutes", "about an hour". Rough on purpose. */
export function roughDuration(seconds: number): string {
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return minutes === 1 ? "about a minute" : `about ${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  return hours === 1 ? "about an hour" : `about ${hours} hours`;
}

/** Coins and their networks as `GET /api/v1/options` lists them (`crypto.coins`). */
export function cryptoOptions() {
  return {
    coins: COIN_IDS.map((coin) => ({
      id: coin,
      networks: COIN_OPTIONS.filter((o) => o.coin === coin).map((o) => ({
        id: o.network,
        label: o.label,
        decimals: o.decimals,
        confirmations: NETWORKS[o.network].confirmations,
      })),
    })),
  };
}
