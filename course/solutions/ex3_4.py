# Exercise 3.4: (experiment): how far back does the ConvLSTM remember? - solution (loaded by tools/run_course.py for the book and CI)
def memory_profile(cell, sequence, forget_shift=0.0):
    copy = PeepholeConvLSTM2D.from_config(cell.get_config())
    copy.build(sequence.shape)
    weights = [np.array(w) for w in cell.get_weights()]
    weights[2][cell.filters:2 * cell.filters] += forget_shift        # the forget gate's bias
    copy.set_weights(weights)
    T = sequence.shape[1]
    batch = np.repeat(sequence, T + 1, axis=0)                         # sample 0 intact, sample t+1 without step t
    for t in range(T):
        batch[t + 1, t] = 0.0
    last = keras.ops.convert_to_numpy(copy(batch))[:, -1]
    return np.linalg.norm((last[1:] - last[:1]).reshape(T, -1), axis=1) / np.linalg.norm(last[0])


# The model's ConvLSTM on the test pair (a centre crop at ci, to stay fast).
crop = {"ci": 48, "quick": 96, "paper": None}[PRESET]
probe_in = lstm_in
if crop:
    top, left = (lstm_in.shape[2] - crop) // 2, (lstm_in.shape[3] - crop) // 2
    probe_in = lstm_in[:, :, top:top + crop, left:left + crop]
shifts = (-3.0, 0.0, 3.0)
profiles = {shift: memory_profile(cell, probe_in, shift) for shift in shifts}
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for shift, profile in profiles.items():
    ax.plot(np.arange(len(profile)), profile, marker="o", label=f"forget bias {shift:+.0f} (mean f = "
            f"{sigmoid(cell.get_weights()[2][cell.filters:2 * cell.filters] + shift).mean():.2f} at zero input)")
ax.set_yscale("log")
ax.set_xlabel("step t whose channel is removed")
ax.set_ylabel("relative change of the last $h$")
ax.set_title(f"[{PRESET}] {'trained' if TRAINED else 'untrained'} ConvLSTM, test pair, input {probe_in.shape[2:4]}",
             fontsize=10)
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
for shift, profile in profiles.items():
    print(f"[{PRESET}] forget shift {shift:+.0f}: influence of the first step {profile[0]:.2e}, "
          f"of the last step {profile[-1]:.2e}, first/last = {profile[0] / profile[-1]:.1e}")
