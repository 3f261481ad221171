// Behind the edge middleware's limit.
export default function Limited() {
  return <p>limited</p>;
}
