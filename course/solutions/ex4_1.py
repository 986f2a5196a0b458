# Exercise 4.1: (experiment): the head is one convolution - solution (loaded by tools/run_course.py for the book and CI)
def compose_head(dw_kernel, dw_bias, flow_kernel, flow_bias):
    kernel = np.zeros((5, 5, *flow_kernel.shape[2:]))
    for a in range(3):                  # depthwise tap a, flow tap b: offset (a - 1) + (b - 1) = (a + b) - 2
        for b in range(3):
            kernel[a:a + 3, b:b + 3] += dw_kernel[a, b, :, 0][None, None, :, None] * flow_kernel
    return kernel, flow_bias + np.einsum("c,ijco->o", dw_bias, flow_kernel)


# (1) the model's own head against one 5x5 convolution, on random features
head_dw, head_flow = model.get_layer("depthwise"), model.get_layer("flow_conv")
probe_features = rng.normal(size=(1, 24, 28, C)).astype("float32")
flow_weights = [rng.normal(0, 0.05, size=head_flow.kernel.shape).astype("float32"), np.float32([0.1, -0.2])]
two_layers = keras.Sequential([keras.Input((24, 28, C)), keras.layers.DepthwiseConv2D(3, padding="same"),
                               keras.layers.Conv2D(2, 3, padding="same")])
two_layers.layers[0].set_weights(head_dw.get_weights())
two_layers.layers[1].set_weights(flow_weights)       # a flow kernel of useful size (the model's starts at 1e-5)
one_conv = keras.layers.Conv2D(2, 5, padding="same")
one_conv.build(probe_features.shape)
one_conv.set_weights([w.astype("float32") for w in compose_head(*head_dw.get_weights(), *flow_weights)])
y_two = keras.ops.convert_to_numpy(two_layers(probe_features))[0]
y_one = keras.ops.convert_to_numpy(one_conv(probe_features))[0]
print(f"[{PRESET}] head (depthwise, flow conv) vs one 5x5 conv: max difference inside "
      f"{np.abs(y_two - y_one)[1:-1, 1:-1].max():.1e}, on the border {np.abs(y_two - y_one).max():.1e} "
      f"(output size {np.abs(y_two).max():.2f})")
# (2) a nonlinearity between the two layers
bent = keras.Sequential([keras.Input((24, 28, C)), two_layers.layers[0], keras.layers.LeakyReLU(0.2), two_layers.layers[1]])
y_bent = keras.ops.convert_to_numpy(bent(probe_features))[0]
print(f"[{PRESET}] with a LeakyReLU between them: max difference inside {np.abs(y_bent - y_one)[1:-1, 1:-1].max():.2f}")
# (3) weights: the two layers against a free 5x5 convolution 64 -> 2
free_5x5 = 5 * 5 * C * 2 + 2
print(f"weights: depthwise {head_dw.count_params()} + flow conv {head_flow.count_params()} = "
      f"{head_dw.count_params() + head_flow.count_params()}, a free 5x5 conv {C} -> 2: {free_5x5}")
