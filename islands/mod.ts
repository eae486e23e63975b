/** Every island, by the name pages use; shared by the server renderer and the browser entry. */
import BarChart from "./bar_chart.tsx";
import CopyButton from "./copy_button.tsx";
import TimeChart from "./time_chart.tsx";
import InvoiceStatus from "./invoice_status.tsx";
import LocalTime from "./local_time.tsx";

export const islands = { BarChart, CopyButton, InvoiceStatus, LocalTime, TimeChart } as const;
export type IslandName = keyof typeof islands;
