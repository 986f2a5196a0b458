# Exercise 2.1: (experiment): what happens to the skip gates when the contrast changes? - solution (loaded by tools/run_course.py for the book and CI)
def skip_gates(model, moving, fixed):
    layers = [model.get_layer(f"skip{k}_se") for k in range(4)]
    entering = keras.Model(model.inputs, [layer.input for layer in layers])([moving, fixed])
    return [keras.ops.convert_to_numpy(layer.gates(x))[0] for layer, x in zip(layers, entering)]


gates_same = skip_gates(gen_show, mov[:1], fix[:1])
gates_gamma = skip_gates(gen_show, mov[:1], fix[:1] ** 0.5)
print(f"[{PRESET}] {weights_note}; fixed image through a gamma curve (x ** 0.5)")
print("skip   channels   gates from .. to   spread (std)   largest change of a gate")
for k, (same, gamma) in enumerate(zip(gates_same, gates_gamma)):
    print(f"skip{k}  {same.size:8d}   {same.min():.3f} .. {same.max():.3f}   {same.std():12.4f}   "
          f"{np.abs(gamma - same).max():.4f}")
