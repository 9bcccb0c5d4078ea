/**
 * Time left for a running job, as a pure function the page calls on every progress update.
 *
 * The rate is measured within the current stage (stages run at very different speeds: decoding and
 * VAD are quick, ASR is most of the work and reports per batch), from the stage's first advance:
 * the wait before it (a model loading, a first batch) says nothing about the rate.
 * The estimate never grows while the job advances: a new measurement can only lower it, and
 * between updates it counts down. Once it has run out while the job is still working, it says
 * nothing until a fresh measurement exists. null: nothing worth showing.
 *
 * state: what the previous call returned (null at first); update: {stage, progress (0..1), nowS}.
 * Returns {state, leftS}.
 */
export function estimateTimeLeft(state, { stage, progress, nowS }) {
  if (!state || progress < state.progress) {
    return { state: { stage, stageT0: null, stageP0: progress, progress, leftS: null, atS: nowS }, leftS: null };
  }
  const next = { ...state, progress };
  if (stage !== state.stage) Object.assign(next, { stage, stageT0: null, stageP0: progress });
  else if (next.stageT0 === null && progress > next.stageP0) Object.assign(next, { stageT0: nowS, stageP0: progress });
  const counting = state.leftS === null ? null : state.leftS - (nowS - state.atS);
  const done = progress - next.stageP0;
  const elapsed = next.stageT0 === null ? 0 : nowS - next.stageT0;
  // Measured only when the job moved: a stall counts the estimate down, it never re-measures it upwards.
  const moved = progress > state.progress;
  const fresh = moved && done >= 0.01 && elapsed > 0 ? (elapsed * (1 - progress)) / done : null;
  let leftS;
  if (fresh === null) leftS = counting;
  else if (counting === null || counting <= 0) leftS = fresh;
  else leftS = Math.min(fresh, counting);
  Object.assign(next, { leftS, atS: nowS });
  return { state: next, leftS: leftS !== null && leftS > 0 ? leftS : null };
}
