# Exercise 7.1: (experiment): what does a one-pixel shift cost? - solution (loaded by tools/run_course.py for the book and CI)
def shift_scores(labels, shift):
    shifted = np.roll(labels, shift, axis=1)
    return dice(labels, shifted), hd95(labels, shifted)


fixed_labels = ds.labels[f_shown]
present = [label for label in np.unique(fixed_labels) if label != 0]
print(f"[{PRESET}] fixed labels of pair {SHOWN}, shifted along the columns")
for shift in (1, 2):
    d_shift, h_shift = shift_scores(fixed_labels, shift)
    print(f"  shift {shift} px: " + ", ".join(f"{ds.label_names[lab]} Dice {d:.3f} HD95 {h:.1f}"
                                            for lab, d, h in zip(present, d_shift, h_shift))
          + f"; mean Dice {np.mean(d_shift):.3f}")
gap = abs(ev.summary["LSTM-COR"]["dice_mean"] - ev.summary["VoxelMorph"]["dice_mean"])
print(f"  mean Dice gap between LSTM-COR and VoxelMorph in the table: {gap:.4f}")
